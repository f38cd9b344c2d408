"""Work on rows that fall due in place (scheduled posts, expiring lots, SLA timers): the loop
that does it a batch per transaction, and the depth of what is due, for the job's metrics.

Such jobs need no queue table: the due rows are claimed with `SKIP LOCKED` and changed by a
conditional UPDATE inside `step`, so replicas share the work and nothing is done twice.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, utcnow
from services.common.jobs.queue import QueueDepth

BatchStep = Callable[[AsyncSession, datetime, int], Awaitable[int]]


async def drain_due(db: Database, step: BatchStep, *, batch: int, max_passes: int) -> int:
    """Run `step(session, now, batch)` (it returns how many rows it handled) one transaction
    at a time until a pass handles less than a full batch; bounded, so one run of a periodic
    job never starves the others. The total handled."""
    total = 0
    for _ in range(max_passes):
        async with db.session() as session:
            handled = await step(session, utcnow(), batch)
            await db.commit(session)
        total += handled
        if handled < batch:
            break
    return total


async def due_depth(db: Database, due_at: sa.ColumnElement[Any], *conditions: sa.ColumnElement[bool]) -> QueueDepth:
    """How many rows are due (`due_at <= now` and `conditions`), and how overdue the oldest is."""
    now = utcnow()
    async with db.session() as session:
        count, oldest = (
            await session.execute(sa.select(sa.func.count(), sa.func.min(due_at)).where(due_at <= now, *conditions))
        ).one()
    return QueueDepth(int(count), max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0)
