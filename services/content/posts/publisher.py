"""The publisher: due `scheduled` posts become `published`, each exactly once.

Runs on every replica as a periodic job (`services.common.jobs`) every
`scheduler_interval_ms`, and is woken at once by a commit that scheduled a post. Each pass
claims up to a batch of due posts with `FOR UPDATE SKIP LOCKED` in one short transaction
(no network call inside it), flips them with a conditional UPDATE and writes their
`content.post_published` events with them; the relay sends those on (partners' bots get
them as signed webhooks).
"""

from __future__ import annotations

import sqlalchemy as sa
import structlog

from services.common.db import Database, utcnow
from services.common.jobs import PeriodicJob, QueueDepth
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
        total = 0
        for _ in range(self.max_passes):
            async with self.db.session() as session:
                published = await publish_due(session, utcnow(), self.batch)
                await self.db.commit(session)
            total += len(published)
            if len(published) < self.batch:
                break
        if total:
            log.info("posts_published", posts=total)
        return total

    async def depth(self) -> QueueDepth:
        """Posts due and not yet published, and how overdue the oldest is."""
        now = utcnow()
        async with self.db.session() as session:
            count, oldest = (
                await session.execute(
                    sa.select(sa.func.count(), sa.func.min(POSTS.c.publish_at)).where(
                        POSTS.c.status == "scheduled", POSTS.c.publish_at <= now
                    )
                )
            ).one()
        return QueueDepth(int(count), max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)


def publisher_job(db: Database, settings: Settings, metrics: Metrics | None = None) -> PeriodicJob:
    publisher = Publisher(db)
    job = PeriodicJob(
        Publisher.NAME, publisher.run_once, interval_seconds=settings.scheduler_interval_ms / 1000, metrics=metrics
    )
    job.metrics.watch(publisher.depth)
    db.on_commit(PUBLISHER_CHANNEL, job.wake)
    return job
