"""Batch ingest, the hot path: body handling, exact effects of a mixed batch, concurrency.

The batch body is validated straight from its bytes; these tests pin that every kind of
bad body still answers as FastAPI's own parsing did, and that a batch has exactly the
effects of recording its events one by one (rows, rollups, last_active_at, events).
"""

from __future__ import annotations

import asyncio
import json
import random
import uuid
from collections import Counter
from datetime import UTC, date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa

from services.common.db import table_of
from services.members.activity.models import Activity, ActivityDaily, ActivityHourly
from services.members.profiles.models import Member
from tests.members.conftest import ApiFactory
from tests.members.factories import OPERATOR, create_community, create_member, outbox_events
from tests.system import System, partner

WRITER = partner("events:write")
BATCH = "/v1/events/batch"


async def table_rows(system: System, model: type) -> list[Any]:
    table = table_of(model)
    async with system.state("members").db.session() as session:
        return list((await session.execute(sa.select(table))).all())


async def last_active(system: System) -> dict[str, datetime | None]:
    """Each member's `last_active_at` as the profiles read it (kept in `member_activity`)."""
    async with system.state("members").db.session() as session:
        return {str(m.id): m.last_active_at for m in (await session.execute(sa.select(Member))).scalars()}


async def test_bad_bodies_answer_like_fastapi_parsing_and_change_nothing(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        community, someone = await create_community(client), await create_member(client)
    good = {"member_id": someone["id"], "community_id": community["id"], "type": "check_in"}
    async with await api(WRITER) as client:
        malformed = await client.post(BATCH, content=b'{"events": [', headers={"Content-Type": "application/json"})
        not_utf8 = await client.post(
            BATCH, content=b'{"events": ["\xff"]}', headers={"Content-Type": "application/json"}
        )
        wrong_type = await client.post(
            BATCH, content=json.dumps({"events": [good]}), headers={"Content-Type": "text/plain"}
        )
        empty = await client.post(BATCH, content=b"", headers={"Content-Type": "application/json"})
        not_object = await client.post(BATCH, json={"events": [good, "nope"]})
        no_events = await client.post(BATCH, json={"items": [good]})
        not_a_list = await client.post(BATCH, json={"events": good})
        # Python's json accepts NaN; the careful path must still refuse it per item.
        nan = await client.post(
            BATCH,
            content=b'{"events": [{"member_id": "%s", "community_id": "%s", "type": "x", "properties": {"v": NaN}}]}'
            % (someone["id"].encode(), community["id"].encode()),
            headers={"Content-Type": "application/json"},
        )
    assert malformed.status_code == 400
    assert malformed.json()["type"] == "https://qunyun.dev/problems/malformed-json"
    assert not_utf8.status_code == 400
    assert wrong_type.status_code == 415
    assert wrong_type.json()["type"] == "https://qunyun.dev/problems/unsupported-media-type"
    assert empty.status_code == 422
    assert empty.json()["errors"] == [{"loc": ["body"], "msg": "Field required"}]
    assert not_object.status_code == 422
    assert not_object.json()["errors"][0]["loc"] == ["body", "events", 1]
    assert no_events.status_code == 422
    assert {tuple(e["loc"]) for e in no_events.json()["errors"]} == {("body", "events"), ("body", "items")}
    assert not_a_list.status_code == 422
    for response in (malformed, not_utf8, wrong_type, empty, not_object, no_events, not_a_list):
        assert response.headers["content-type"] == "application/problem+json", response.text
    assert nan.status_code == 200
    assert nan.json()["accepted"] == 0
    assert nan.json()["rejected"][0]["problem"]["errors"][0]["loc"] == ["properties"]
    assert await table_rows(system, Activity) == []
    assert await outbox_events(system, "activity.recorded") == []


async def test_the_batch_body_is_documented(system: System) -> None:
    async with system.direct("members", OPERATOR) as client:
        document = (await client.get("/openapi.json")).json()
    operation = document["paths"]["/v1/events/batch"]["post"]
    schema = operation["requestBody"]["content"]["application/json"]["schema"]
    assert operation["requestBody"]["required"] is True
    assert schema["required"] == ["events"]
    assert schema["properties"]["events"]["items"] == {"$ref": "#/components/schemas/ActivityCreate"}
    assert schema["properties"]["events"]["maxItems"] == 1000
    assert "ActivityCreate" in document["components"]["schemas"]
    assert {"400", "415", "422"} <= set(operation["responses"])


async def test_a_mixed_batch_has_exactly_the_effects_of_its_events(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        shanghai = await create_community(client, timezone="Asia/Shanghai")
        new_york = await create_community(client, timezone="America/New_York")
        people = [await create_member(client) for _ in range(4)]
    zones = {shanghai["id"]: ZoneInfo("Asia/Shanghai"), new_york["id"]: ZoneInfo("America/New_York")}
    start = datetime(2026, 3, 7, 20, 0, tzinfo=UTC)  # New York's DST starts on 2026-03-08
    events: list[dict[str, Any]] = []
    for i in range(120):
        person = people[i % 4]
        community = (shanghai, new_york)[i % 3 == 0]
        at = start + timedelta(minutes=37 * i)
        event: dict[str, Any] = {
            "id": str(uuid.uuid4()),
            "community_id": community["id"],
            "type": ("check_in", "message_sent", "poll_voted")[i % 3],
            "occurred_at": at.isoformat().replace("+00:00", "Z"),
            "properties": {"n": i, "text": "你好" if i % 2 else "hi"},
        }
        if i % 5 == 0:
            event["external_id"] = person["external_id"]
        else:
            event["member_id"] = person["id"]
        events.append(event)
    random.Random(7).shuffle(events)
    repeat = {**events[3]}  # the same id again in the same batch: a duplicate, recorded once
    async with await api(WRITER) as client:
        response = await client.post(BATCH, json={"events": [*events, repeat]})
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 120, "duplicates": 1, "rejected": []}

    by_external = {p["external_id"]: p["id"] for p in people}

    def member_of(event: dict[str, Any]) -> str:
        return str(event.get("member_id") or by_external[event["external_id"]])

    def local(event: dict[str, Any]) -> datetime:
        at = datetime.fromisoformat(event["occurred_at"].replace("Z", "+00:00"))
        return at.astimezone(zones[event["community_id"]])

    recorded = {str(r.id): r for r in await table_rows(system, Activity)}
    assert set(recorded) == {e["id"] for e in events}
    for event in events:
        row = recorded[event["id"]]
        assert str(row.member_id) == member_of(event)
        assert row.local_date == local(event).date()
        assert row.properties == event["properties"]

    daily = {
        (str(r.community_id), r.local_date, str(r.member_id)): r.events for r in await table_rows(system, ActivityDaily)
    }
    assert daily == Counter((e["community_id"], local(e).date(), member_of(e)) for e in events)
    hourly = {
        (str(r.community_id), r.local_date, r.hour): (r.weekday, r.events)
        for r in await table_rows(system, ActivityHourly)
    }
    expected_hourly = Counter((e["community_id"], local(e).date(), local(e).hour) for e in events)
    assert hourly == {key: (key[1].weekday(), n) for key, n in expected_hourly.items()}

    latest = await last_active(system)
    for person in people:
        mine = [
            datetime.fromisoformat(e["occurred_at"].replace("Z", "+00:00"))
            for e in events
            if member_of(e) == person["id"]
        ]
        assert latest[person["id"]] == max(mine)

    payloads = {p["activity_id"]: p for p in await outbox_events(system, "activity.recorded")}
    assert set(payloads) == {e["id"] for e in events}
    for event in events:
        name = "Asia/Shanghai" if event["community_id"] == shanghai["id"] else "America/New_York"
        assert payloads[event["id"]] == {
            "activity_id": event["id"],
            "member_id": member_of(event),
            "community_id": event["community_id"],
            "type": event["type"],
            "occurred_at": event["occurred_at"],
            "local_date": local(event).date().isoformat(),
            "timezone": name,
            "properties": event["properties"],
        }

    # An older batch adds to the rollups but never moves last_active_at back.
    older = [{**e, "id": str(uuid.uuid4()), "occurred_at": "2026-01-01T00:00:00Z"} for e in events[:8]]
    async with await api(WRITER) as client:
        response = await client.post(BATCH, json={"events": older})
    assert response.json()["accepted"] == 8
    assert await last_active(system) == latest
    assert sum(r.events for r in await table_rows(system, ActivityDaily)) == 128


async def test_concurrent_batches_over_the_same_members_neither_deadlock_nor_lose_counts(
    api: ApiFactory, system: System
) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        people = [await create_member(client) for _ in range(40)]
    now = datetime.now(UTC)
    batches: list[list[dict[str, Any]]] = []
    for b in range(10):
        # Distinct events, every batch touching the same members (and rollup rows) in its own
        # order; small batches alongside big ones, so the database may pick different plans.
        size = 400 if b % 2 else 3
        chosen = [people[(b * 7 + i) % len(people)] for i in range(size)]
        random.Random(b).shuffle(chosen)
        batches.append(
            [
                {
                    "id": str(uuid.uuid4()),
                    "member_id": p["id"],
                    "community_id": community["id"],
                    "type": "message_sent",
                    "occurred_at": (now - timedelta(seconds=random.Random(i).randint(0, 7200))).isoformat(),
                }
                for i, p in enumerate(chosen)
            ]
        )
    async with await api(WRITER) as client:
        answers = await asyncio.gather(*(client.post(BATCH, json={"events": b}) for b in batches))
    assert [a.status_code for a in answers] == [200] * len(batches), [a.text for a in answers if a.status_code != 200]
    total = sum(len(b) for b in batches)
    assert sum(a.json()["accepted"] for a in answers) == total
    assert len(await table_rows(system, Activity)) == total
    assert sum(r.events for r in await table_rows(system, ActivityDaily)) == total
    assert sum(r.events for r in await table_rows(system, ActivityHourly)) == total
    assert len(await outbox_events(system, "activity.recorded")) == total
    latest: dict[str, datetime] = {}
    for batch in batches:
        for e in batch:
            at = datetime.fromisoformat(e["occurred_at"])
            latest[e["member_id"]] = max(latest.get(e["member_id"], at), at)
    touched = {member_id: at for member_id, at in (await last_active(system)).items() if member_id in latest}
    assert touched == latest


async def test_local_days_follow_each_community_zone(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        east = await create_community(client, timezone="Asia/Tokyo")
        west = await create_community(client, timezone="America/Los_Angeles")
        someone = await create_member(client)
    at = "2026-06-30T20:00:00Z"  # 05:00 on July 1st in Tokyo, 13:00 on June 30th in Los Angeles
    events = [
        {"member_id": someone["id"], "community_id": c["id"], "type": "check_in", "occurred_at": at}
        for c in (east, west)
    ]
    async with await api(WRITER) as client:
        assert (await client.post(BATCH, json={"events": events})).json()["accepted"] == 2
    hourly = {(str(r.community_id), r.local_date, r.hour) for r in await table_rows(system, ActivityHourly)}
    assert hourly == {(east["id"], date(2026, 7, 1), 5), (west["id"], date(2026, 6, 30), 13)}


async def test_the_same_batch_posted_concurrently_is_recorded_once(api: ApiFactory, system: System) -> None:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        people = [await create_member(client) for _ in range(5)]
    now = datetime.now(UTC)
    events = [
        {
            "id": str(uuid.uuid4()),
            "member_id": people[i % 5]["id"],
            "community_id": community["id"],
            "type": "check_in",
            "occurred_at": (now - timedelta(minutes=i)).isoformat(),
        }
        for i in range(60)
    ]
    async with await api(WRITER) as client:
        answers = await asyncio.gather(*(client.post(BATCH, json={"events": events}) for _ in range(4)))
    assert [a.status_code for a in answers] == [200] * 4
    assert sum(a.json()["accepted"] for a in answers) == 60
    assert sum(a.json()["duplicates"] for a in answers) == 180
    assert len(await table_rows(system, Activity)) == 60
    assert sum(r.events for r in await table_rows(system, ActivityDaily)) == 60
    assert sum(r.events for r in await table_rows(system, ActivityHourly)) == 60
    assert sorted(p["activity_id"] for p in await outbox_events(system, "activity.recorded")) == sorted(
        e["id"] for e in events
    )
    latest = await last_active(system)
    for i, person in enumerate(people):
        assert latest[person["id"]] == now - timedelta(minutes=i)
