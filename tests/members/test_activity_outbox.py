"""A batch's `activity.recorded` events travel as ONE outbox row (and one pending row per
subscriber); the relay still delivers each event, with its own id, to every subscriber,
exactly once, and isolates an event a subscriber rejects without holding up the others."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.subscriptions import SUBSCRIPTIONS, subscribers_for
from services.common.db import table_of
from services.common.events import Event
from services.common.jobs import PARKED, PENDING
from services.content.communities import service as content_communities
from services.content.communities.models import ActivityHour
from services.members.db import kit_tables
from tests.members.conftest import ApiFactory
from tests.members.factories import ADMIN, OPERATOR, create_community, create_member
from tests.system import System, partner

WRITER = partner("events:write")
BATCH = "/v1/events/batch"
SUBSCRIBERS = subscribers_for(SUBSCRIPTIONS, "members", ActivityRecorded.event_type)


async def post_batch(api: ApiFactory, count: int) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    async with await api(OPERATOR) as client:
        community = await create_community(client)
        people = [await create_member(client) for _ in range(3)]
    start = datetime.now(UTC) - timedelta(hours=3)
    events = [
        {
            "id": str(uuid.uuid4()),
            "member_id": people[i % len(people)]["id"],
            "community_id": community["id"],
            "type": "check_in" if i % 2 else "message_sent",
            "occurred_at": (start + timedelta(minutes=i)).isoformat(),
            "properties": {"n": i},
        }
        for i in range(count)
    ]
    async with await api(WRITER) as client:
        answer = await client.post(BATCH, json={"events": events})
    assert answer.status_code == 200, answer.text
    assert answer.json()["accepted"] == count
    return events, people


async def outbox_rows(system: System) -> list[Any]:
    outbox = kit_tables.outbox
    async with system.state("members").db.session() as session:
        query = sa.select(outbox.c.id, outbox.c.batch_size, outbox.c.data).where(
            outbox.c.type == ActivityRecorded.event_type
        )
        return list((await session.execute(query.order_by(outbox.c.seq))).all())


async def pending_rows(system: System) -> list[Any]:
    pending = kit_tables.outbox_pending
    async with system.state("members").db.session() as session:
        return list((await session.execute(sa.select(pending))).all())


async def inbox_ids(system: System, service: str) -> list[uuid.UUID]:
    from importlib import import_module

    inbox = import_module(f"services.{service}.db").kit_tables.inbox
    async with system.state(service).db.session() as session:
        query = sa.select(inbox.c.event_id).where(inbox.c.type == ActivityRecorded.event_type)
        return list((await session.scalars(query)).all())


def batch_event_ids(rows: Sequence[Any]) -> set[uuid.UUID]:
    return {uuid.UUID(event["id"]) for row in rows if row.batch_size is not None for event in row.data}


async def test_a_batch_is_one_outbox_row_and_every_subscriber_gets_each_event_once(
    api: ApiFactory, system: System
) -> None:
    events, _ = await post_batch(api, 40)
    (row,) = await outbox_rows(system)
    assert row.batch_size == 40 == len(row.data)
    # One pending delivery per subscriber for the whole batch, not one per event.
    mine = [p for p in await pending_rows(system) if p.event_id == row.id]
    assert sorted(p.subscriber for p in mine) == sorted(SUBSCRIBERS)
    assert {"rewards", "content", "gateway"} <= set(SUBSCRIBERS)
    ids = batch_event_ids([row])
    assert len(ids) == 40  # each event has its own id...
    assert not ids & {uuid.UUID(e["id"]) for e in events}  # ...not the client's activity id

    await system.drain()
    assert await pending_rows(system) == []
    for service in SUBSCRIBERS:
        received = await inbox_ids(system, service)
        assert sorted(received) == sorted(ids), service  # each event, once
    # The content histogram counted each activity once.
    assert await content_histogram_total(system) == 40

    # Delivered again (a relay that died before recording its outcome): nothing changes.
    pending = kit_tables.outbox_pending
    async with system.state("members").db.session() as session:
        await session.execute(
            pending.insert(),
            [
                {"subscriber": s, "event_id": row.id, "attempts": 0, "next_attempt_at": datetime.now(UTC)}
                for s in SUBSCRIBERS
            ],
        )
        await session.commit()
    await system.drain()
    assert await pending_rows(system) == []
    for service in SUBSCRIBERS:
        assert sorted(await inbox_ids(system, service)) == sorted(ids), service
    assert await content_histogram_total(system) == 40


async def content_histogram_total(system: System) -> int:
    table = table_of(ActivityHour)
    async with system.state("content").db.session() as session:
        return int(await session.scalar(sa.select(sa.func.coalesce(sa.func.sum(table.c.activities), 0))) or 0)


async def test_an_event_a_subscriber_rejects_is_split_out_and_the_rest_delivered(
    api: ApiFactory, system: System, monkeypatch: pytest.MonkeyPatch
) -> None:
    await post_batch(api, 12)
    (row,) = await outbox_rows(system)
    poison = uuid.UUID(row.data[5]["id"])
    real = content_communities.record_activity

    async def refusing(session: Any, batch: Sequence[Event[ActivityRecorded]]) -> None:
        if any(event.id == poison for event in batch):
            raise RuntimeError("content cannot take this one")
        await real(session, batch)

    monkeypatch.setattr(content_communities, "record_activity", refusing)
    await system.drain()

    # rewards and the gateway got all twelve; content the eleven others, once each.
    all_ids = batch_event_ids([row])
    for service in ("rewards", "gateway"):
        assert sorted(await inbox_ids(system, service)) == sorted(all_ids)
    assert sorted(await inbox_ids(system, "content")) == sorted(all_ids - {poison})
    assert await content_histogram_total(system) == 11
    # The poison event now has its own outbox row (same id) and one pending row, for content only.
    (left,) = await pending_rows(system)
    assert (left.subscriber, left.event_id, left.failure_kind) == ("content", poison, "rejected")
    assert left.status in (PENDING, PARKED)
    split = [r for r in await outbox_rows(system) if r.id == poison]
    assert len(split) == 1
    assert split[0].batch_size is None
    assert split[0].data == row.data[5]["data"]

    # Once content takes it again, it gets it exactly once.
    monkeypatch.setattr(content_communities, "record_activity", real)
    pending = kit_tables.outbox_pending
    async with system.state("members").db.session() as session:
        await session.execute(pending.update().values(status=PENDING, next_attempt_at=datetime.now(UTC)))
        await session.commit()
    await system.drain()
    assert await pending_rows(system) == []
    assert sorted(await inbox_ids(system, "content")) == sorted(all_ids)
    assert await content_histogram_total(system) == 12


async def test_erasure_scrubs_the_members_events_inside_batch_rows(api: ApiFactory, system: System) -> None:
    _, people = await post_batch(api, 9)
    erased = people[0]["id"]
    async with await api(ADMIN) as client:
        assert (await client.delete(f"/v1/members/{erased}")).status_code == 204
    (row,) = await outbox_rows(system)
    for event in row.data:
        if event["data"]["member_id"] == erased:
            assert event["data"]["properties"] == {}
        else:
            assert event["data"]["properties"] != {}
    assert sum(event["data"]["member_id"] == erased for event in row.data) == 3


async def test_two_erasures_at_once_scrub_both_members_events_in_one_batch_row(api: ApiFactory, system: System) -> None:
    _, people = await post_batch(api, 9)
    erased = {people[0]["id"], people[1]["id"]}
    async with await api(ADMIN) as client:
        answers = await asyncio.gather(*(client.delete(f"/v1/members/{member_id}") for member_id in erased))
    assert [answer.status_code for answer in answers] == [204, 204]
    (row,) = await outbox_rows(system)
    for event in row.data:
        assert (event["data"]["properties"] == {}) == (event["data"]["member_id"] in erased)
