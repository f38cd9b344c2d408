"""Keyset pagination: stable pages with equal sort keys, and bad cursors or limits are 422."""

from __future__ import annotations

import base64
import json
import uuid
from datetime import UTC, datetime

import pytest
import sqlalchemy as sa

from services.common.pagination import DEFAULT_LIMIT, MAX_LIMIT, decode_cursor, encode_cursor, keyset_after
from services.common.problems import Unprocessable
from services.feedback.db import kit_tables
from tests.common.kit import KitSystem
from tests.system import staff

SAME_TIME = datetime(2026, 11, 21, 8, 0, tzinfo=UTC)


def cursor_of(values: object) -> str:
    return base64.urlsafe_b64encode(json.dumps(values).encode()).decode().rstrip("=")


async def walk(kit: KitSystem, limit: int) -> list[list[str]]:
    pages: list[list[str]] = []
    cursor = None
    async with kit.client(staff("operator")) as client:
        while True:
            params: dict[str, str | int] = {"limit": limit}
            if cursor:
                params["cursor"] = cursor
            response = await client.get("/things", params=params)
            assert response.status_code == 200, response.text
            body = response.json()
            pages.append([item["id"] for item in body["items"]])
            cursor = body["next_cursor"]
            if cursor is None:
                return pages


async def test_pages_with_equal_sort_keys_neither_skip_nor_repeat(kit: KitSystem) -> None:
    ids = await kit.emit(*(f"t{i}" for i in range(7)), occurred_at=SAME_TIME)
    pages = await walk(kit, limit=3)
    assert [len(page) for page in pages] == [3, 3, 1]
    flat = [item for page in pages for item in page]
    assert flat == sorted(str(i) for i in ids)  # ties broken by id


async def test_an_exact_last_page_has_no_next_cursor(kit: KitSystem) -> None:
    await kit.emit(*(f"t{i}" for i in range(6)), occurred_at=SAME_TIME)
    assert [len(page) for page in await walk(kit, limit=3)] == [3, 3]


async def test_rows_added_between_pages_do_not_shift_them(kit: KitSystem) -> None:
    first = await kit.emit("a", "b", "c", "d", occurred_at=SAME_TIME)
    async with kit.client(staff("operator")) as client:
        page1 = (await client.get("/things", params={"limit": 2})).json()
        await kit.emit("late1", "late2")  # later timestamps: they belong after the cursor
        page2 = (await client.get("/things", params={"limit": 2, "cursor": page1["next_cursor"]})).json()
    assert [i["id"] for i in page1["items"]] + [i["id"] for i in page2["items"]] == sorted(str(i) for i in first)


async def test_default_and_maximum_limits(kit: KitSystem) -> None:
    await kit.emit(*(f"t{i}" for i in range(DEFAULT_LIMIT + 1)))
    async with kit.client(staff("operator")) as client:
        default = (await client.get("/things")).json()
        biggest = await client.get("/things", params={"limit": MAX_LIMIT})
    assert len(default["items"]) == DEFAULT_LIMIT
    assert default["next_cursor"]
    assert biggest.status_code == 200
    assert len(biggest.json()["items"]) == DEFAULT_LIMIT + 1


@pytest.mark.parametrize("limit", ["0", "-1", str(MAX_LIMIT + 1), "ten", "1.5"])
async def test_limits_out_of_bounds_are_422(kit: KitSystem, limit: str) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.get("/things", params={"limit": limit})
    assert response.status_code == 422
    body = response.json()
    assert body["type"] == "https://qunyun.dev/problems/validation-error"
    assert body["errors"][0]["loc"] == ["query", "limit"]


BAD_CURSORS = {
    "garbage": "!!!not-base64!!!",
    "not-json": base64.urlsafe_b64encode(b"\xff\xfe").decode(),
    "not-a-list": cursor_of({"a": 1}),
    "wrong-size": cursor_of(["2026-11-21T08:00:00+00:00"]),
    "bad-timestamp": cursor_of(["yesterday", str(uuid.uuid4())]),
    "naive-timestamp": cursor_of(["2026-11-21T08:00:00", str(uuid.uuid4())]),
    "number-as-timestamp": cursor_of([12, str(uuid.uuid4())]),
    "bad-uuid": cursor_of(["2026-11-21T08:00:00+00:00", "nope"]),
    "number-as-uuid": cursor_of(["2026-11-21T08:00:00+00:00", 5]),
    "null-key": cursor_of([None, str(uuid.uuid4())]),
    "list-as-key": cursor_of([[1], str(uuid.uuid4())]),
}


@pytest.mark.parametrize("kind", sorted(BAD_CURSORS))
async def test_invalid_cursors_are_422(kit: KitSystem, kind: str) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.get("/things", params={"cursor": BAD_CURSORS[kind]})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://qunyun.dev/problems/invalid-cursor"


async def test_an_overlong_cursor_is_422(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.get("/things", params={"cursor": "a" * 501})
    assert response.status_code == 422


def test_cursor_round_trip_and_direction() -> None:
    when, ident = SAME_TIME, uuid.uuid4()
    assert decode_cursor(encode_cursor([when, ident, 3, "x"]), 4) == [str(when), str(ident), 3, "x"]
    table = kit_tables.outbox
    columns = [table.c.occurred_at, table.c.id]
    cursor = encode_cursor([when, ident])
    ascending = keyset_after(columns, cursor)
    descending = keyset_after(columns, cursor, descending=True)
    assert ascending is not None
    assert descending is not None
    assert " > " in str(ascending.compile())
    assert " < " in str(descending.compile())
    assert keyset_after(columns, None) is None
    with pytest.raises(Unprocessable):
        keyset_after([table.c.seq], encode_cursor(["x"]))
    assert keyset_after([table.c.seq], encode_cursor([5])) is not None
    assert isinstance(keyset_after([sa.column("n", sa.Float())], encode_cursor([1])), sa.ColumnElement)
