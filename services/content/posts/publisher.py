"""The publisher: due `scheduled` posts become `published`, each exactly once.

Runs on every replica as a periodic job (`services.common.jobs`) every
`scheduler_interval_ms`, and is woken at once by a commit that scheduled a post. Each pass
claims up to a batch of due posts with `FOR UPDATE SKIP LOCKED` in one short transaction
(no network call inside it), flips them with a conditional UPDATE and writes their
`content.post_published` events with them; the relay sends those on (partners' bots get
them as signed webhooks).

After each run it looks up the next due time (one probe of the partial index `ix_posts_due`)
and, if that comes before the next poll, sets a timer to wake itself then (or runs again at
once if a post fell due while it ran): a post goes out at its `publish_at`, not up to a
polling interval later.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime, timedelta

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, utcnow
from services.common.jobs import PeriodicJob, QueueDepth, drain_due, due_depth
from services.common.observability import Metrics
from services.common.settings import Settings
from services.content.posts.service import POSTS, PUBLISHER_CHANNEL, next_due_in, publish_due

log = structlog.get_logger("qunyun.content.publisher")


class Publisher:
    NAME = "content.publisher"

    # A wake lands this long after the due time, so the post is due when the pass reads the clock.
    LATE = timedelta(milliseconds=5)

    def __init__(self, db: Database, batch: int = 1000, max_passes: int = 50) -> None:
        self.db = db
        self.batch = batch
        self.max_passes = max_passes
        self.wake: Callable[[], None] | None = None  # set by `publisher_job`
        self.horizon = timedelta(0)  # timers only for what is due before the next poll
        self._timer: asyncio.Handle | None = None

    async def run_once(self) -> int:
        """Publish what is due, a batch per transaction, until nothing is left; then wake
        again at the next due time if it comes before the next poll."""
        total = await drain_due(self.db, _publish_count, batch=self.batch, max_passes=self.max_passes)
        if total:
            log.info("posts_published", posts=total)
        if self.wake is not None:
            await self._wake_at_next_due(published=total > 0)
        return total

    async def _wake_at_next_due(self, *, published: bool) -> None:
        async with self.db.read_session() as session:  # one read: no BEGIN/ROLLBACK around it
            wait = await next_due_in(session, utcnow())
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if wait is None or self.wake is None or wait >= self.horizon:
            return
        if wait > timedelta(0):
            self._timer = asyncio.get_running_loop().call_later((wait + self.LATE).total_seconds(), self.wake)
        elif published:
            # Fell due while this pass ran (or left by `max_passes`): go again at once. A pass
            # that published nothing while posts are due left them to another replica's pass
            # (it holds them): waking then would spin.
            self.wake()

    async def depth(self) -> QueueDepth:
        """Posts due and not yet published, and how overdue the oldest is."""
        return await due_depth(self.db, POSTS.c.publish_at, POSTS.c.status == "scheduled")


async def _publish_count(session: AsyncSession, now: datetime, batch: int) -> int:
    return len(await publish_due(session, now, batch))


def publisher_job(db: Database, settings: Settings, metrics: Metrics | None = None) -> PeriodicJob:
    publisher = Publisher(db)
    job = PeriodicJob(
        Publisher.NAME, publisher.run_once, interval_seconds=settings.scheduler_interval_ms / 1000, metrics=metrics
    )
    job.metrics.watch(publisher.depth)
    db.on_commit(PUBLISHER_CHANNEL, job.wake)
    publisher.wake = job.wake
    publisher.horizon = timedelta(seconds=job.interval_seconds * (1 + job.jitter))
    return job
