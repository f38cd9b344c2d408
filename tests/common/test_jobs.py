"""The job base on real Postgres: claims with a lease never overlap, expired leases are
reclaimed, parked jobs wait for a replay, backoff is jittered, periodic jobs run and stop,
metrics move, and no pass holds a row lock while its HTTP call is in flight."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from datetime import timedelta

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.exc import DBAPIError

from services.common.db import Database, utcnow
from services.common.jobs import IN_FLIGHT, PARKED, PENDING, Backoff, JobQueue, PeriodicJob
from services.common.observability import Metrics
from services.feedback.db import kit_tables
from tests.common.kit import KitSystem
from tests.common.test_events_concurrency import replica
from tests.common.test_relay_operations import scrape, value

PENDING_ROWS = kit_tables.outbox_pending
QUEUE = JobQueue("relay", PENDING_ROWS)


@pytest_asyncio.fixture
async def other_db(kit: KitSystem) -> AsyncIterator[Database]:
    """A second engine on the producer's database, as another replica would have."""
    db = Database(kit.settings.database_url_for("feedback"), kit.settings)
    try:
        yield db
    finally:
        await db.dispose()


def candidates(limit: int) -> sa.Select:  # type: ignore[type-arg]
    return sa.select(PENDING_ROWS.c.subscriber, PENDING_ROWS.c.event_id).limit(limit)


async def claim(db: Database, limit: int, lease_seconds: float = 60) -> list[tuple[str, uuid.UUID]]:
    async with db.session() as session:
        taken = await QUEUE.claim(session, candidates(limit), now=utcnow(), lease_seconds=lease_seconds)
        await session.commit()
    return [(key.subscriber, key.event_id) for key in taken.keys]


async def statuses(kit: KitSystem) -> dict[str, int]:
    counts: dict[str, int] = {}
    for row in await kit.pending():
        counts[row.status] = counts.get(row.status, 0) + 1
    return counts


# --- claims ----------------------------------------------------------------------------------


async def test_two_claimers_racing_never_get_the_same_job(kit: KitSystem, other_db: Database) -> None:
    await kit.emit(*(f"t{i}" for i in range(150)))  # 300 jobs: members and content
    first: list[tuple[str, uuid.UUID]] = []
    second: list[tuple[str, uuid.UUID]] = []

    async def keep_claiming(db: Database, into: list[tuple[str, uuid.UUID]]) -> None:
        while taken := await claim(db, 7):
            into.extend(taken)
            await asyncio.sleep(0)

    await asyncio.gather(*(keep_claiming(db, into) for db, into in [(kit.db(), first), (other_db, second)] * 2))
    assert first
    assert second  # both really claimed, side by side
    assert not set(first) & set(second)
    assert len(first) + len(second) == len(set(first) | set(second)) == 300
    assert await statuses(kit) == {IN_FLIGHT: 300}


async def test_an_expired_lease_is_reclaimed_and_the_old_token_holds_nothing(kit: KitSystem) -> None:
    await kit.emit("a")
    async with kit.db().session() as session:
        crashed = await QUEUE.claim(session, candidates(10), now=utcnow(), lease_seconds=60)
        await session.commit()
    assert len(crashed.keys) == 2
    assert await claim(kit.db(), 10) == []  # leased: nobody else may take them
    async with kit.db().session() as session:
        await session.execute(PENDING_ROWS.update().values(lease_until=utcnow() - timedelta(seconds=1)))
        await session.commit()
    assert len(await claim(kit.db(), 10)) == 2  # the lease expired: claimed again
    async with kit.db().session() as session:  # the crashed worker's late release changes nothing
        released = await session.execute(QUEUE.release(crashed.token))
        await session.commit()
    assert released.rowcount == 0  # type: ignore[attr-defined]
    assert await statuses(kit) == {IN_FLIGHT: 2}


async def test_parked_and_future_jobs_are_not_claimed_until_replayed(kit: KitSystem) -> None:
    await kit.emit("a", "b")
    async with kit.db().session() as session:
        await session.execute(PENDING_ROWS.update().where(PENDING_ROWS.c.subscriber == "members").values(status=PARKED))
        await session.execute(
            PENDING_ROWS.update()
            .where(PENDING_ROWS.c.subscriber == "content")
            .values(next_attempt_at=utcnow() + timedelta(hours=1))
        )
        await session.commit()
    assert await claim(kit.db(), 10) == []
    assert await kit.relay.unpark("members") == 2
    assert {subscriber for subscriber, _ in await claim(kit.db(), 10)} == {"members"}


async def test_a_release_makes_jobs_due_again_without_counting_an_attempt(kit: KitSystem) -> None:
    await kit.emit("a")
    async with kit.db().session() as session:
        taken = await QUEUE.claim(session, candidates(10), now=utcnow(), lease_seconds=60)
        await session.commit()
        await session.execute(QUEUE.release(taken.token))
        await session.commit()
    rows = await kit.pending()
    assert {(row.status, row.attempts, row.lease_until, row.claim_token) for row in rows} == {(PENDING, 0, None, None)}


# --- backoff -----------------------------------------------------------------------------------


def test_backoff_grows_is_jittered_and_capped() -> None:
    exponential = Backoff(base=1, cap=60)
    ceilings = [exponential.ceiling(n) for n in range(1, 9)]
    assert ceilings == [1, 2, 4, 8, 16, 32, 60, 60]
    for attempts in range(1, 9):
        delays = {exponential.delay(attempts) for _ in range(30)}
        ceiling = exponential.ceiling(attempts) or 0
        assert all(d is not None and ceiling / 2 <= d <= ceiling for d in delays)
        assert len(delays) > 1  # jittered
    schedule = Backoff(schedule=(5, 300), jitter=(0.9, 1.1))
    assert 4.5 <= (schedule.delay(1) or 0) <= 5.5
    assert 270 <= (schedule.delay(2) or 0) <= 330
    assert schedule.delay(3) is None  # exhausted


# --- periodic jobs -----------------------------------------------------------------------------


async def test_a_periodic_job_runs_wakes_survives_failures_and_stops() -> None:
    runs: list[int] = []
    metrics = Metrics("feedback")

    async def work() -> int:
        runs.append(len(runs))
        if len(runs) == 2:
            raise RuntimeError("one bad run")
        return 0

    job = PeriodicJob("tests.periodic", work, interval_seconds=3600, metrics=metrics)
    job.start()
    try:
        await _until(lambda: len(runs) >= 1)  # the first run comes at once
        job.wake()
        await _until(lambda: len(runs) >= 2)  # woken early, and this run fails
        job.wake()
        await _until(lambda: len(runs) >= 3)  # the loop survived it
    finally:
        await job.stop()
    assert job._task is None
    assert metrics.job_attempts.labels("feedback", "tests.periodic")._value.get() == 3
    assert metrics.job_failures.labels("feedback", "tests.periodic")._value.get() == 1


async def test_a_busy_periodic_job_runs_again_at_once() -> None:
    left = [3]

    async def work() -> bool:
        left[0] -= 1
        return left[0] > 0

    job = PeriodicJob("tests.busy", work, interval_seconds=3600, more_while_busy=True)
    job.start()
    try:
        await _until(lambda: left[0] <= 0)
    finally:
        await job.stop()


async def _until(condition, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    async with asyncio.timeout(timeout):
        while not condition():
            await asyncio.sleep(0.01)


# --- metrics -----------------------------------------------------------------------------------


async def test_job_metrics_move(kit: KitSystem) -> None:
    kit.transport.down.add("members")
    await kit.emit("a", "b")
    await kit.relay.drain()
    samples = await scrape(kit)
    assert value(samples, "qunyun_job_queue_depth", job="relay") == 2  # members' two
    assert value(samples, "qunyun_job_attempts_total", job="relay") == 2  # one post each
    assert value(samples, "qunyun_job_failures_total", job="relay") == 1
    async with kit.db().session() as session:
        await session.execute(PENDING_ROWS.update().values(next_attempt_at=utcnow() - timedelta(minutes=2)))
        await session.commit()
    samples = await scrape(kit)
    assert value(samples, "qunyun_job_oldest_due_seconds", job="relay") >= 120
    kit.transport.down.clear()
    await kit.settle()
    samples = await scrape(kit)
    assert value(samples, "qunyun_job_queue_depth", job="relay") == 0
    assert value(samples, "qunyun_job_oldest_due_seconds", job="relay") == 0
    assert value(samples, "qunyun_job_attempts_total", job="relay") == 3


# --- no row lock across a network call ---------------------------------------------------------


async def test_no_relay_pass_holds_a_row_lock_while_its_post_is_in_flight(kit: KitSystem) -> None:
    (event_id,) = await kit.emit("a")
    gate, entered = asyncio.Event(), asyncio.Event()

    async def blocked(request: httpx.Request) -> httpx.Response:
        entered.set()
        await gate.wait()
        return httpx.Response(200, json={"applied": 1, "duplicates": 0})

    async with replica(kit) as relay:
        relay.client = httpx.AsyncClient(transport=httpx.MockTransport(blocked))
        task = asyncio.create_task(relay.deliver_once("members"))
        try:
            await asyncio.wait_for(entered.wait(), 5)
            async with kit.db().session() as session:  # the post is in flight: the row is free
                locked = await session.execute(
                    sa.select(PENDING_ROWS.c.status)
                    .where(PENDING_ROWS.c.subscriber == "members", PENDING_ROWS.c.event_id == event_id)
                    .with_for_update(nowait=True)
                )
                assert locked.scalar_one() == IN_FLIGHT  # leased, not locked
                await session.rollback()
        finally:
            gate.set()
            assert await task == 1
            await relay.client.aclose()
    assert [row.subscriber for row in await kit.pending()] == ["content"]


async def test_the_nowait_probe_does_see_a_held_lock(kit: KitSystem, other_db: Database) -> None:
    """The probe above is meaningful: a row lock held elsewhere makes it fail at once."""
    await kit.emit("a")
    async with other_db.session() as holder:
        await holder.execute(sa.select(PENDING_ROWS).with_for_update())
        async with kit.db().session() as session:
            with pytest.raises(DBAPIError):
                await session.execute(sa.select(PENDING_ROWS).with_for_update(nowait=True))
        await holder.rollback()
