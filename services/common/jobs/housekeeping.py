"""Housekeeping: every periodic purge of a service, in one place, with its retention.

Each `Purge` deletes rows older than its retention, a chunk at a time (each chunk its own
short transaction, picked with `SKIP LOCKED`, so a purge never holds up the service).
`Housekeeping` runs a service's purges every `maintenance_interval_seconds` as one
periodic job, claimed in `job_schedules`: one replica per interval does it.

The kit's purges (`kit_purges`) are the same in every service: delivered outbox rows after
`outbox_retention_days`, inbox ids after `inbox_retention_days`, Idempotency-Keys after
24 h. A service adds its own (`older_than(table, column, keep_for)`), e.g. webhook logs.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, utcnow
from services.common.jobs.periodic import PeriodicJob, RunClaim
from services.common.observability import Metrics
from services.common.settings import Settings

if TYPE_CHECKING:  # the kit tables are built on the job columns: no import at run time
    from services.common.events.tables import KitTables

log = structlog.get_logger("qunyun.housekeeping")

PURGE_CHUNK = 5000

# Deletes up to `limit` rows older than `before`; returns how many it deleted.
PurgeStep = Callable[[AsyncSession, datetime, int], Awaitable[int]]


@dataclass(frozen=True)
class Purge:
    name: str
    step: PurgeStep
    keep_for: timedelta


def older_than(
    table: sa.Table,
    column: sa.Column[Any],
    *,
    where: Sequence[sa.ColumnElement[bool]] = (),
    by_day: bool = False,
) -> PurgeStep:
    """A purge step: delete rows whose `column` is before the cutoff (and `where` holds).
    `by_day`: the column is a date, compared with the cutoff's (UTC) day."""
    keys = list(table.primary_key.columns)

    async def step(session: AsyncSession, before: datetime, limit: int) -> int:
        cutoff: Any = before.date() if by_day else before
        # SKIP LOCKED: a purge racing another (or a busy row) splits the rows instead of waiting.
        chunk = sa.select(*keys).where(column < cutoff, *where).limit(limit).with_for_update(skip_locked=True)
        key = sa.tuple_(*keys) if len(keys) > 1 else keys[0]
        result = await session.execute(table.delete().where(key.in_(chunk)))
        return int(getattr(result, "rowcount", 0) or 0)

    return step


def kit_purges(tables: KitTables, settings: Settings) -> list[Purge]:
    """The purges of the kit's own tables, the same in every service."""
    from services.common.idempotency import KEEP_FOR  # idempotency imports the kit tables too

    outbox, pending = tables.outbox, tables.outbox_pending
    waiting = sa.select(pending.c.event_id).where(pending.c.event_id == outbox.c.id).exists()
    return [
        # Only events no subscriber still waits for (parked ones included).
        Purge(
            "outbox",
            older_than(outbox, outbox.c.occurred_at, where=[~waiting]),
            timedelta(days=settings.outbox_retention_days),
        ),
        # Redeliveries come within minutes; a month of ids is plenty.
        Purge(
            "inbox", older_than(tables.inbox, tables.inbox.c.received_at), timedelta(days=settings.inbox_retention_days)
        ),
        # The contract keeps an Idempotency-Key at least 24 h.
        Purge("idempotency_keys", older_than(tables.idempotency_keys, tables.idempotency_keys.c.created_at), KEEP_FOR),
    ]


class Housekeeping:
    """A service's purges, run as one claimed periodic job."""

    NAME = "housekeeping"

    def __init__(
        self,
        db: Database,
        tables: KitTables,
        settings: Settings,
        purges: Sequence[Purge],
        *,
        metrics: Metrics | None = None,
        chunk: int = PURGE_CHUNK,
    ) -> None:
        self.db = db
        self.purges = list(purges)
        self.chunk = chunk
        self.job = PeriodicJob(
            self.NAME,
            self.purge,
            interval_seconds=settings.maintenance_interval_seconds,
            metrics=metrics,
            claim=RunClaim(db, tables.job_schedules),
            first_run_after=min(60.0, settings.maintenance_interval_seconds),
        )

    async def purge(self, now: datetime | None = None) -> dict[str, int]:
        """Run every purge now (unclaimed: tests and tools); returns rows deleted per purge."""
        now = now or utcnow()
        counts: dict[str, int] = {}
        for purge in self.purges:
            counts[purge.name] = await self.purge_one(purge, now)
        if any(counts.values()):
            log.info("purged", **counts)
        return counts

    async def purge_one(self, purge: Purge, now: datetime) -> int:
        total = 0
        while True:
            async with self.db.session() as session:
                deleted = await purge.step(session, now - purge.keep_for, self.chunk)
                await session.commit()
            total += deleted
            if deleted < self.chunk:
                return total

    async def run_once(self) -> dict[str, int] | None:
        """One claimed run: None if another replica has this interval's run."""
        result = await self.job.run_once()
        return result if isinstance(result, dict) else None

    def start(self) -> None:
        self.job.start()

    async def stop(self) -> None:
        await self.job.stop()
