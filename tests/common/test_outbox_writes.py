"""The outbox's batch write (one `unnest` statement for events and their pending rows), and
event data encoded exactly as `jsonable_encoder` would have it."""

from __future__ import annotations

import enum
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import sqlalchemy as sa
from fastapi.encoders import jsonable_encoder
from pydantic import BaseModel

from services.common.events import EventDraft, emit_many
from services.common.events.outbox import event_json
from services.feedback.db import kit_tables
from tests.common.kit import KitSystem, NobodyListens, ThingArchived, ThingCreated


class Colour(enum.Enum):
    RED = "red"


class Size(enum.StrEnum):
    LARGE = "large"


class Point(BaseModel):
    x: int
    at: datetime


@dataclass
class Pair:
    left: uuid.UUID
    right: date


def sample_data() -> dict[str, Any]:
    return {
        "uuid": uuid.UUID("12345678-1234-5678-1234-567812345678"),
        "aware": datetime(2026, 11, 21, 8, 0, 0, 123456, tzinfo=UTC),
        "shanghai": datetime(2026, 11, 21, 16, 0, tzinfo=timezone(timedelta(hours=8))),
        "naive": datetime(2026, 11, 21, 8, 0),
        "day": date(2026, 11, 21),
        "decimal": Decimal("12.50"),
        "whole": Decimal("3"),
        "enum": Colour.RED,
        "str_enum": Size.LARGE,
        "model": Point(x=1, at=datetime(2026, 1, 1, tzinfo=UTC)),
        "dataclass": Pair(uuid.UUID(int=5), date(2026, 1, 2)),
        "set": {"only"},
        "tuple": (1, "two", 3.5),
        "nested": {"list": [{"deep": uuid.UUID(int=7)}], "none": None, "bool": True},
        "keys": {1: "int key", uuid.UUID(int=9): "uuid key"},
        "huge": 2**70,
        "text": '你好 \u2028 "quoted" \\ /',
        "float": 1e16,
    }


def test_event_json_reads_back_as_jsonable_encoder_output() -> None:
    data = sample_data()
    assert json.loads(event_json(data)) == json.loads(json.dumps(jsonable_encoder(data)))
    without_huge = {k: v for k, v in data.items() if k != "huge"}  # the fast path, not the fallback
    assert json.loads(event_json(without_huge)) == json.loads(json.dumps(jsonable_encoder(without_huge)))


async def test_a_batch_writes_every_event_with_its_routes_in_order(kit: KitSystem) -> None:
    fixed = uuid.uuid4()
    at = datetime(2026, 11, 21, 16, 0, tzinfo=timezone(timedelta(hours=8)))
    created = ThingCreated(name='你好 \u2028 "quoted" \\ /', count=3, id=uuid.UUID(int=7), at=at)
    drafts = [
        EventDraft(created, id=fixed, occurred_at=at),
        EventDraft(ThingArchived(name="a")),
        EventDraft(ThingCreated(name="b"), occurred_at=at + timedelta(hours=1)),
        EventDraft(NobodyListens(n=3)),  # written, but no subscriber: no pending row
    ]
    async with kit.db().session() as session:
        ids = await emit_many(session, drafts)
        await session.commit()
    assert ids[0] == fixed
    assert len(set(ids)) == 4
    outbox = kit_tables.outbox
    async with kit.db().session() as session:
        rows = (await session.execute(sa.select(outbox).order_by(outbox.c.seq))).all()
    assert [r.id for r in rows] == ids  # seq follows the order of the drafts
    assert [r.type for r in rows] == [d.type for d in drafts]
    assert rows[0].occurred_at == at
    assert rows[2].occurred_at == at + timedelta(hours=1)
    assert rows[1].occurred_at.tzinfo is not None
    assert rows[0].data == created.model_dump(mode="json")
    assert rows[0].data["at"] == "2026-11-21T08:00:00Z"  # contract times are UTC on the wire
    assert rows[3].data == {"n": 3}
    pending = {(r.subscriber, r.event_id) for r in await kit.pending()}
    assert pending == {
        ("members", ids[0]),
        ("content", ids[0]),
        ("members", ids[1]),
        ("members", ids[2]),
        ("content", ids[2]),
    }
    assert {(r.attempts, r.last_error) for r in await kit.pending()} == {(0, None)}


async def test_a_naive_occurred_at_is_refused(kit: KitSystem) -> None:
    async with kit.db().session() as session:
        with pytest.raises(ValueError, match="naive"):
            await emit_many(session, [EventDraft(ThingCreated(name="a"), occurred_at=datetime(2026, 1, 1))])
        await session.rollback()
    assert await kit.rows(kit_tables.outbox) == []
