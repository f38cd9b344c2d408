"""Expiry: lots whose time has come lose their remaining points through `expired` entries.

`expire_due_lots` is the plain function (tests call it with any `now`); `ExpiryWorker`
runs it in the background. Accounts are claimed with `FOR UPDATE SKIP LOCKED`, so
replicas share the work and a member busy in another transaction is simply taken on the
next pass.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from datetime import datetime

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.rewards import PointsExpired
from services.common.db import Database, utcnow
from services.common.events import KitTables
from services.common.idempotency import purge_expired
from services.common.settings import Settings
from services.rewards.points.service import LOTS, OpenLot, Postings, select_for_update

log = structlog.get_logger("qunyun.rewards.expiry")

PURGE_EVERY_SECONDS = 3600.0


async def expire_due_lots(session: AsyncSession, now: datetime, limit: int = 500) -> int:
    """Expire the due lots of up to `limit` members; returns how many lots expired."""
    due = (LOTS.c.expires_at <= now, LOTS.c.remaining > 0)
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


class ExpiryWorker:
    """Expires due lots every `scheduler_interval_ms`; once an hour purges old idempotency keys."""

    def __init__(self, db: Database, settings: Settings, kit_tables: KitTables, batch: int = 500) -> None:
        self.db = db
        self.kit_tables = kit_tables
        self.interval = settings.scheduler_interval_ms / 1000
        self.batch = batch
        self._task: asyncio.Task[None] | None = None
        self._last_purge = 0.0

    async def run_once(self, max_passes: int = 20) -> int:
        total = 0
        for _ in range(max_passes):
            async with self.db.session() as session:
                expired = await expire_due_lots(session, utcnow(), self.batch)
                await self.db.commit(session)
            total += expired
            if expired == 0:
                break
        if time.monotonic() - self._last_purge > PURGE_EVERY_SECONDS:
            async with self.db.session() as session:
                await purge_expired(session, self.kit_tables)
                await self.db.commit(session)
            self._last_purge = time.monotonic()
        return total

    async def run(self) -> None:
        while True:
            try:
                expired = await self.run_once()
                if expired:
                    log.info("points_expired", lots=expired)
            except Exception:  # a failed pass must not stop the loop; the next one retries
                log.exception("expiry_pass_failed")
            await asyncio.sleep(self.interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name="rewards-expiry")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
