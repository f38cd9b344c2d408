"""The publisher: due `scheduled` posts become `published`, each exactly once.

Runs on every replica as a periodic job (`services.common.jobs`) every
`scheduler_interval_ms`, and is woken at once by a commit that scheduled a post. Each pass
claims up to a batch of due posts with `FOR UPDATE SKIP LOCKED` in one short transaction
(no network call inside it), flips them with a conditional UPDATE and writes their
`content.post_published` events with them; the relay sends those on (partners' bots get
them as signed webhooks).
"""

from __future__ import annotations

from datetime import datetime

import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.common.jobs import PeriodicJob, QueueDepth, drain_due, due_depth
from services.common.observability import Metrics
from services.common.settings import Settings
from services.content.posts.service import POSTS, PUBLISHER_CHANNEL, publish_due

log = structlog.get_logger("qunyun.content.publisher")


class Publisher:
    NAME = "content.publisher"

    def __init__(self, db: Database, batch: int = 1000, max_passes: int = 50) -> None:
        self.db = db
        self.batch = batch
        self.max_passes = max_passes

    async def run_once(self) -> int:
        """Publish what is due, a batch per transaction, until nothing is left."""
        total = await drain_due(self.db, _publish_count, batch=self.batch, max_passes=self.max_passes)
        if total:
            log.info("posts_published", posts=total)
        return total

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
    return job
