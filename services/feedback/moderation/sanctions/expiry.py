"""The sanction expiry job: a mute (or temporary ban) whose time is up lifts itself, and
`moderation.sanction_lifted` is emitted exactly once, however many replicas run the job.

It runs on every replica as a periodic job (`services.common.jobs`) every
`scheduler_interval_ms`: each pass claims a batch of due sanctions with `SKIP LOCKED` and
ends them with a conditional UPDATE in one short transaction that also writes their events
(`sanctions.service.expire_due`); no network call happens inside it.
"""

from __future__ import annotations

import structlog

from services.common.db import Database
from services.common.jobs import PeriodicJob, QueueDepth, drain_due, due_depth
from services.common.observability import Metrics
from services.common.settings import Settings
from services.feedback.moderation.sanctions.service import SANCTIONS, expire_due

log = structlog.get_logger("qunyun.feedback.sanctions")


class SanctionExpiry:
    NAME = "feedback.sanction_expiry"

    def __init__(self, db: Database, batch: int = 1000, max_passes: int = 50) -> None:
        self.db = db
        self.batch = batch
        self.max_passes = max_passes

    async def run_once(self) -> int:
        """Lift what is due, a batch per transaction, until nothing is left."""
        total = await drain_due(self.db, expire_due, batch=self.batch, max_passes=self.max_passes)
        if total:
            log.info("sanctions_expired", sanctions=total)
        return total

    async def depth(self) -> QueueDepth:
        """Sanctions due to end and not yet ended, and how overdue the oldest is."""
        return await due_depth(self.db, SANCTIONS.c.until, SANCTIONS.c.status == "active")


def sanction_expiry_job(db: Database, settings: Settings, metrics: Metrics | None = None) -> PeriodicJob:
    expiry = SanctionExpiry(db)
    job = PeriodicJob(
        SanctionExpiry.NAME, expiry.run_once, interval_seconds=settings.scheduler_interval_ms / 1000, metrics=metrics
    )
    job.metrics.watch(expiry.depth)
    return job
