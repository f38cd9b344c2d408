"""Expiry: lots whose time has come lose their remaining points through `expired` entries.

`expire_due_lots` is the plain function (tests call it with any `now`); `expiry_job`
runs it as a periodic job (`services.common.jobs`) every `scheduler_interval_ms`.
Accounts are claimed with `FOR UPDATE SKIP LOCKED`, so replicas share the work and a
member busy in another transaction is simply taken on the next pass. The work is local
(no network call), so the row locks live only as long as one short transaction.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.rewards import PointsExpired
from services.common.db import Database
from services.common.jobs import PeriodicJob, QueueDepth, drain_due, due_depth
from services.common.observability import Metrics
from services.common.settings import Settings
from services.rewards.points.repository import LOTS
from services.rewards.points.service import OpenLot, Postings, select_for_update

log = structlog.get_logger("qunyun.rewards.expiry")


async def expire_due_lots(session: AsyncSession, now: datetime, limit: int = 500) -> int:
    """Expire the due lots of up to `limit` members; returns how many lots expired."""
    due = (LOTS.c.expires_at <= now, LOTS.c.open)  # `open`: what the partial index is on
    members = (await session.scalars(sa.select(LOTS.c.member_id).where(*due).distinct().limit(limit))).all()
    if not members:
        return 0
    accounts = await select_for_update(session, members, skip_locked=True)
    if not accounts:
        return 0
    lots = await session.execute(
        sa.select(LOTS.c.id, LOTS.c.member_id, LOTS.c.expires_at, LOTS.c.remaining)
        .where(LOTS.c.member_id.in_(list(accounts)), *due)
        .order_by(LOTS.c.member_id, LOTS.c.expires_at)
    )
    postings = Postings(now)
    expired: dict[uuid.UUID, int] = defaultdict(int)
    count = 0
    for row in lots:
        account = accounts[row.member_id]
        postings.expire(account, OpenLot(row.id, row.expires_at, row.remaining))
        expired[row.member_id] += row.remaining
        count += 1
    for member_id, points in expired.items():
        postings.emit(
            PointsExpired(member_id=member_id, points=points, balance=accounts[member_id].balance, expired_at=now)
        )
    await postings.flush(session)
    return count


class Expiry:
    """Expires due lots, a batch of members per transaction, until none are due."""

    NAME = "rewards.expiry"

    def __init__(self, db: Database, batch: int = 500, max_passes: int = 20) -> None:
        self.db = db
        self.batch = batch
        self.max_passes = max_passes

    async def run_once(self) -> int:
        # Each member in a batch holds at least one due lot: fewer lots than the batch means
        # no member was left out.
        total = await drain_due(self.db, expire_due_lots, batch=self.batch, max_passes=self.max_passes)
        if total:
            log.info("points_expired", lots=total)
        return total

    async def depth(self) -> QueueDepth:
        """Lots due to expire (that still hold points) and how overdue the oldest is."""
        return await due_depth(self.db, LOTS.c.expires_at, LOTS.c.open)


def expiry_job(db: Database, settings: Settings, metrics: Metrics | None = None) -> PeriodicJob:
    """The background job: every `scheduler_interval_ms`, on every replica."""
    expiry = Expiry(db)
    job = PeriodicJob(
        Expiry.NAME, expiry.run_once, interval_seconds=settings.scheduler_interval_ms / 1000, metrics=metrics
    )
    job.metrics.watch(expiry.depth)
    return job
