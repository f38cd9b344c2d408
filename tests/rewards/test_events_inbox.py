"""The kit's batch-handler hook as rewards uses it: new events once, in order; failures named."""

from __future__ import annotations

import uuid
from typing import Any

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.events import Event, EventEnvelope, apply_events
from services.common.events.inbox import EventHandlerFailed
from services.common.problems import ServiceUnavailable
from services.rewards.db import kit_tables
from services.rewards.earning.service import apply_activity_batch
from tests.rewards.factories import activity, deliver, erased
from tests.system import System, staff


def events(*envelopes: dict[str, object]) -> list[EventEnvelope]:
    return [EventEnvelope.model_validate(e) for e in envelopes]


async def inbox_ids(system: System) -> set[uuid.UUID]:
    async with system.state("rewards").db.session() as session:
        return set((await session.scalars(sa.select(kit_tables.inbox.c.event_id))).all())


async def test_the_batch_handler_gets_each_new_event_once_in_order(system: System) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    first, second, third = events(*(activity(mid, community, "message_sent") for _ in range(3)))
    seen: list[list[uuid.UUID]] = []

    async def batch_handler(session: AsyncSession, new: list[Event[Any]]) -> None:
        seen.append([e.id for e in new])

    db = system.state("rewards").db
    async with db.session() as session:
        await apply_events(session, kit_tables, {}, [first, second], batch_handler)
        await db.commit(session)
    async with db.session() as session:
        result = await apply_events(session, kit_tables, {}, [second, third, first, third], batch_handler)
        await db.commit(session)
    assert seen == [[first.id, second.id], [third.id]]
    assert (result.applied, result.duplicates) == (1, 3)
    async with db.session() as session:
        await apply_events(session, kit_tables, {}, [first], batch_handler)  # nothing new: not called
    assert len(seen) == 2


async def test_a_failing_batch_names_the_event_and_leaves_nothing(system: System) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    good, bad, later = events(*(activity(mid, community, "invite_accepted") for _ in range(3)))

    async def batch_handler(session: AsyncSession, new: list[Event[Any]]) -> None:
        await apply_activity_batch(session, new)
        if any(e.id == bad.id for e in new):
            raise ValueError("cannot apply this one")

    db = system.state("rewards").db
    async with db.session() as session:
        with pytest.raises(EventHandlerFailed) as failed:
            await apply_events(session, kit_tables, {}, [good, good, bad, later], batch_handler)
        await session.rollback()
    assert failed.value.event.id == bad.id
    assert failed.value.extra["index"] == 2  # its place in the batch as posted
    assert failed.value.extra["event_id"] == str(bad.id)
    assert await inbox_ids(system) == set()
    async with db.session() as session:
        assert await session.scalar(sa.text("SELECT count(*) FROM ledger_entries")) == 0


async def test_a_batch_that_fails_only_as_a_whole_is_retried_later(system: System) -> None:
    mid, community = uuid.uuid4(), uuid.uuid4()
    batch = events(*(activity(mid, community) for _ in range(2)))

    async def batch_handler(session: AsyncSession, new: list[Event[Any]]) -> None:
        if len(new) > 1:
            raise RuntimeError("too many at once")

    db = system.state("rewards").db
    async with db.session() as session:
        with pytest.raises(ServiceUnavailable):
            await apply_events(session, kit_tables, {}, batch, batch_handler)
        await session.rollback()
    assert await inbox_ids(system) == set()


async def test_rewards_posts_answer_with_the_kit_route_and_keep_event_order(system: System) -> None:
    """Activity before an erasure earns (then leaves with the erasure); activity after it does not."""
    mid, community = uuid.uuid4(), uuid.uuid4()
    before, after = activity(mid, community, "invite_accepted"), activity(mid, community, "invite_accepted")
    result = await deliver(system, before, erased(mid), after, before)
    assert result == {"applied": 3, "duplicates": 1}
    # An erased member's points are no longer public (404): read them as the export does.
    async with system.direct("rewards", staff("admin")) as client:
        points = (await client.get(f"/internal/members/{mid}/export")).json()["points"]
    assert points["balance"] == 20
    assert await inbox_ids(system) >= {uuid.UUID(before["id"]), uuid.UUID(after["id"])}


async def test_a_failing_handler_over_http_names_the_event_for_the_relay(system: System) -> None:
    from services.common.identity import SYSTEM

    mid, community = uuid.uuid4(), uuid.uuid4()
    good = activity(mid, community)
    poison = erased(mid)
    poison["data"] = {"member_id": str(mid), "erased_at": "2026-01-01T00:00:00"}  # naive: breaks the contract
    async with system.direct("rewards", SYSTEM) as client:
        response = await client.post("/internal/events", json={"events": [good, poison]})
    assert response.status_code == 500, response.text
    assert response.json()["event_id"] == poison["id"]
    assert response.json()["index"] == 1
    assert await inbox_ids(system) == set()
