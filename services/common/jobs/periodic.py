"""The periodic-job runner: one shape for every loop that runs "every N seconds".

A `PeriodicJob` calls `work()` every `interval_seconds` (stretched by a random jitter so
replicas started together do not run in step), runs it again at once while it reports
progress (`more_while_busy`), can be woken early (`wake()`, or a commit on a channel of
`Database.on_commit`), counts attempts and failures in the job metrics, survives a
failing run (logged; the next run retries), and stops cleanly on shutdown.

With a `RunClaim`, each run is first claimed in the `job_schedules` table, so one replica
per interval does the work (housekeeping); without one, every replica runs it and the
work itself splits the rows (`JobQueue.claim`, `SKIP LOCKED`).

Example (content's publisher)::

    async def publish_due_posts() -> int:
        async with db.session() as session:
            published = await posts.publish_due(session, utcnow())  # claims with SKIP LOCKED
            await session.commit()
        return published

    publisher = PeriodicJob(
        "content.publisher",
        publish_due_posts,
        interval_seconds=settings.scheduler_interval_ms / 1000,
        metrics=app.state.metrics,
    )
    db.on_commit("posts", publisher.wake)  # a newly scheduled post wakes it
    publisher.start()
    ...
    await publisher.stop()

`create_service_app(background=[...])` takes factories returning such a job.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta

import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql

from services.common.db import Database, utcnow
from services.common.jobs.metrics import JobMetrics
from services.common.observability import Metrics

log = structlog.get_logger("qunyun.jobs")

# What a run reports: how much it did (truthy = progress, run again at once if allowed).
Work = Callable[[], Awaitable[object]]


class RunClaim:
    """Claims a named run in `job_schedules`, so one replica per interval does the work.

    A run is due when `next_run_at` has passed and no unexpired lease holds it; claiming
    moves `next_run_at` one interval ahead and leases the row for `lease_seconds` (a
    replica that dies mid-run blocks nothing past its lease)."""

    def __init__(self, db: Database, table: sa.Table, *, lease_seconds: float = 600.0) -> None:
        self.db = db
        self.table = table
        self.lease_seconds = lease_seconds

    async def try_claim(self, name: str, interval_seconds: float, now: datetime | None = None) -> bool:
        now = now or utcnow()
        t = self.table
        async with self.db.session() as session:
            await session.execute(
                postgresql.insert(t)
                .values(name=name, next_run_at=now)
                .on_conflict_do_nothing(index_elements=[t.c.name])
            )
            due = (
                sa.select(t.c.name)
                .where(
                    t.c.name == name,
                    t.c.next_run_at <= now,
                    sa.or_(t.c.lease_until.is_(None), t.c.lease_until <= now),
                )
                .with_for_update(skip_locked=True)
                .cte("due")
            )
            claimed = await session.execute(
                t.update()
                .where(t.c.name == due.c.name)
                .values(
                    next_run_at=now + timedelta(seconds=interval_seconds),
                    lease_until=now + timedelta(seconds=self.lease_seconds),
                    last_started_at=now,
                )
                .returning(t.c.name)
            )
            won = claimed.first() is not None
            await session.commit()
        return won

    async def finish(self, name: str, error: str | None = None) -> None:
        t = self.table
        async with self.db.session() as session:
            await session.execute(
                t.update()
                .where(t.c.name == name)
                .values(lease_until=None, last_finished_at=utcnow(), last_error=error[:1000] if error else None)
            )
            await session.commit()


class PeriodicJob:
    """Runs `work` every `interval_seconds` (± `jitter`, a fraction) until stopped."""

    def __init__(
        self,
        name: str,
        work: Work,
        *,
        interval_seconds: float,
        jitter: float = 0.1,
        metrics: Metrics | None = None,
        claim: RunClaim | None = None,
        more_while_busy: bool = False,
        first_run_after: float = 0.0,
    ) -> None:
        self.name = name
        self.work = work
        self.interval_seconds = interval_seconds
        self.jitter = jitter
        self.metrics = JobMetrics(metrics, name)
        self.claim = claim
        self.more_while_busy = more_while_busy
        self.first_run_after = first_run_after
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """Run now instead of at the end of the interval (new work arrived)."""
        self._wake.set()

    def next_sleep(self) -> float:
        spread = self.interval_seconds * self.jitter
        return max(0.0, self.interval_seconds + random.uniform(-spread, spread))

    async def run_once(self) -> object:
        """One run (claimed first, with a `RunClaim`); returns what `work` returned, or None
        when another replica holds this interval's run. Raises what `work` raises."""
        if self.claim is not None and not await self.claim.try_claim(self.name, self.interval_seconds):
            return None
        self.metrics.attempted()
        try:
            result = await self.work()
        except BaseException as exc:
            self.metrics.failed()
            if self.claim is not None:
                with contextlib.suppress(Exception):
                    await asyncio.shield(self.claim.finish(self.name, f"{type(exc).__name__}: {exc}"))
            raise
        if self.claim is not None:
            await self.claim.finish(self.name)
        return result

    async def run(self) -> None:
        if self.first_run_after > 0:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.first_run_after)
        while not self._stopping:
            # Cleared before the run: a wake that lands during it must start the next one.
            self._wake.clear()
            progressed: object = None
            try:
                progressed = await self.run_once()
            except Exception:  # a failed run must not stop the loop; the next one retries
                log.exception("job_run_failed", job=self.name)
            if self._stopping:
                break
            if self.more_while_busy and progressed:
                await asyncio.sleep(0)  # let others in, then keep going while there is work
                continue
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.next_sleep())

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._task = asyncio.create_task(self.run(), name=f"job-{self.name}")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Let the current run finish (briefly), then cancel it."""
        if self._task is None:
            return
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(asyncio.shield(self._task), timeout=grace_seconds)
        except TimeoutError:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
        except asyncio.CancelledError:
            self._task.cancel()
            raise
        self._task = None
