"""Running the relay: it wakes on commit, housekeeping keeps its tables small, and it reports its state."""

from __future__ import annotations

import asyncio
import time
import uuid
from datetime import timedelta

import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from services.common.contracts import Subscriptions
from services.common.db import utcnow
from services.common.events import emit
from services.common.jobs import Housekeeping, kit_purges
from services.feedback.db import kit_tables
from tests.common.kit import KitDatabases, KitSystem, ThingArchived, ThingCreated, kit_system
from tests.common.test_events_concurrency import replica
from tests.system import staff

OUTBOX, PENDING, INBOX, KEYS = (
    kit_tables.outbox,
    kit_tables.outbox_pending,
    kit_tables.inbox,
    kit_tables.idempotency_keys,
)


async def wait_for(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await condition():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)


# --- waking ------------------------------------------------------------------------------------


async def test_a_commit_that_wrote_events_wakes_the_relay_at_once(kit_dbs: KitDatabases) -> None:
    async with kit_system(kit_dbs, relay_interval_ms=60_000) as kit:
        kit.relay.start()
        try:
            await asyncio.sleep(0.05)  # the loop has done its first pass and sleeps for a minute
            async with kit.client(staff("operator")) as client:
                await client.post("/things", json={"name": "from-a-request"})
            await wait_for(lambda: _delivered(kit, 1))
            await kit.emit("from-a-background-job")  # its own session and commit
            await wait_for(lambda: _delivered(kit, 2))
        finally:
            await kit.relay.stop()


async def test_a_commit_during_a_fruitless_pass_is_not_missed(kit_dbs: KitDatabases) -> None:
    # content's pass comes first, so the commit lands after it, while members is failing.
    routes: Subscriptions = {"content": frozenset({ThingCreated}), "members": frozenset({ThingCreated, ThingArchived})}
    async with kit_system(kit_dbs, routes, relay_interval_ms=60_000) as kit:
        kit.transport.down.add("members")
        kit.transport.latency = 0.3  # members takes 0.3 s to fail
        kit.relay.start()
        try:
            await asyncio.sleep(0.05)
            async with kit.db().session() as session:  # only members wants this one
                await emit(session, ThingArchived(name="x"))
                await session.commit()
            await asyncio.sleep(0.1)  # the relay is now waiting on members
            (event_id,) = await kit.emit("during-the-pass")
            await wait_for(lambda: _content_has(kit, event_id))
        finally:
            await kit.relay.stop()


async def _content_has(kit: KitSystem, event_id: uuid.UUID) -> bool:
    return str(event_id) in kit.transport.posted["content"]


async def _delivered(kit: KitSystem, count: int) -> bool:
    return len(kit.transport.posted["members"]) == count


# --- retention ---------------------------------------------------------------------------------


async def age_outbox(kit: KitSystem, event_ids: list[uuid.UUID], days: float) -> None:
    async with kit.db().session() as session:
        await session.execute(
            OUTBOX.update().where(OUTBOX.c.id.in_(event_ids)).values(occurred_at=utcnow() - timedelta(days=days))
        )
        await session.commit()


async def test_housekeeping_purges_only_what_nobody_needs(kit: KitSystem) -> None:
    delivered_old, delivered_recent = await kit.emit("old", "recent")
    await kit.relay.drain()
    kit.transport.down.add("members")
    (waiting_old,) = await kit.emit("waiting")
    await kit.relay.drain()
    await age_outbox(kit, [delivered_old, waiting_old], days=8)  # retention is 7 days
    now = utcnow()
    async with kit.db().session() as session:
        await session.execute(
            INBOX.insert(),
            [
                {"event_id": uuid.uuid4(), "type": "x", "source": "members", "received_at": now - timedelta(days=31)},
                {"event_id": uuid.uuid4(), "type": "x", "source": "members", "received_at": now - timedelta(days=1)},
            ],
        )
        await session.execute(
            KEYS.insert(),
            [
                {"caller": "staff:a", "key": "old", "request_hash": "h", "created_at": now - timedelta(hours=25)},
                {"caller": "staff:a", "key": "new", "request_hash": "h", "created_at": now - timedelta(hours=23)},
            ],
        )
        await session.commit()

    result = await kit.producer.state.housekeeping.purge()

    assert result == {"outbox": 1, "inbox": 1, "idempotency_keys": 1}
    assert {row.id for row in await kit.rows(OUTBOX)} == {delivered_recent, waiting_old}
    assert len(await kit.rows(INBOX)) == 1
    assert [row.key for row in await kit.rows(KEYS)] == ["new"]
    # The event still waiting for members is delivered once members is back.
    kit.transport.down.clear()
    await kit.settle()
    assert (await kit.seen("members"))[str(waiting_old)] == 1


async def test_the_running_housekeeping_job_purges(kit_dbs: KitDatabases) -> None:
    async with kit_system(kit_dbs, maintenance_interval_seconds=0.05, relay_interval_ms=20) as kit:
        ids = await kit.emit("a", "b")
        await kit.relay.drain()
        await age_outbox(kit, ids, days=30)
        housekeeping = kit.producer.state.housekeeping
        housekeeping.job.first_run_after = 0
        housekeeping.start()
        try:
            await wait_for(lambda: _outbox_empty(kit))
        finally:
            await housekeeping.stop()


async def _outbox_empty(kit: KitSystem) -> bool:
    return await kit.rows(OUTBOX) == []


async def test_replicas_purging_at_once_split_the_work(kit: KitSystem) -> None:
    old = utcnow() - timedelta(days=30)
    rows = [{"id": uuid.uuid4(), "type": "thing.created", "occurred_at": old, "data": {}} for _ in range(12_000)]
    async with kit.db().session() as session:
        await session.execute(OUTBOX.insert(), rows)
        await session.commit()
    (outbox_purge,) = [p for p in kit_purges(kit_tables, kit.settings) if p.name == "outbox"]
    async with replica(kit) as second:
        first_db, second_db = kit.db(), second.db
        purges = [
            Housekeeping(db, kit_tables, kit.settings, [outbox_purge], chunk=1000).purge()
            for db in (first_db, second_db)
        ]
        first, other = await asyncio.gather(*purges)
    assert first["outbox"] + other["outbox"] == 12_000
    async with kit.db().session() as session:
        assert await session.scalar(sa.select(sa.func.count()).select_from(OUTBOX)) == 0


async def test_one_replica_per_interval_runs_housekeeping(kit: KitSystem) -> None:
    async with replica(kit) as second:
        jobs = [
            Housekeeping(db, kit_tables, kit.settings, kit_purges(kit_tables, kit.settings))
            for db in (kit.db(), second.db)
        ]
        results = await asyncio.gather(*(job.run_once() for job in jobs))
        assert sorted(result is not None for result in results) == [False, True]
        assert [await job.run_once() for job in jobs] == [None, None]  # the interval has not passed
    (schedule,) = await kit.rows(kit_tables.job_schedules)
    assert (schedule.name, schedule.lease_until, schedule.last_error) == ("housekeeping", None, None)
    assert schedule.next_run_at > utcnow() + timedelta(seconds=kit.settings.maintenance_interval_seconds - 60)


# --- metrics -----------------------------------------------------------------------------------


async def scrape(kit: KitSystem) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    async with kit.client(None) as client:
        text = (await client.get("/metrics")).text
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(samples: dict, name: str, **labels: str) -> float:  # type: ignore[type-arg]
    return float(samples.get((name, tuple(sorted({"service": "feedback", **labels}.items()))), 0.0))


async def test_metrics_report_pending_lag_failures_and_parked_events(kit: KitSystem) -> None:
    kit.transport.down.add("members")
    kit.behaviour["content"].poison_names.add("bad")
    await kit.emit("a", "b", "bad")
    await kit.relay.drain()
    async with kit.db().session() as session:  # pretend they have been due for two minutes
        await session.execute(
            PENDING.update()
            .where(PENDING.c.subscriber == "members")
            .values(next_attempt_at=utcnow() - timedelta(minutes=2))
        )
        await session.commit()

    samples = await scrape(kit)
    assert value(samples, "qunyun_relay_pending_events", subscriber="members") == 3
    assert value(samples, "qunyun_relay_lag_seconds", subscriber="members") >= 120
    assert value(samples, "qunyun_relay_delivery_failures_total", subscriber="members", kind="unavailable") == 1
    assert value(samples, "qunyun_relay_delivery_failures_total", subscriber="content", kind="rejected") == 1
    assert value(samples, "qunyun_relay_events_delivered_total", subscriber="content") == 2
    assert value(samples, "qunyun_relay_pending_events", subscriber="content") == 1

    kit.transport.down.clear()
    await kit.settle()
    samples = await scrape(kit)
    assert value(samples, "qunyun_relay_pending_events", subscriber="members") == 0
    assert value(samples, "qunyun_relay_lag_seconds", subscriber="members") == 0
    assert value(samples, "qunyun_relay_events_delivered_total", subscriber="members") == 3
    assert value(samples, "qunyun_relay_pending_events", subscriber="content") == 0
    assert value(samples, "qunyun_relay_parked_events", subscriber="content") == 1
    assert value(samples, "qunyun_relay_events_parked_total", subscriber="content") == 1
