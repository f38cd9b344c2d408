"""A queue of jobs in a table: claim with a lease, record a status, release.

A queue table carries the job columns (`job_columns()`): an explicit `status`, `attempts`,
`next_attempt_at` (when a pending job is due), `lease_until` and `claim_token` (who holds
an in-flight job, and until when), `last_error`.

Claiming is one short transaction: pick due rows with `FOR UPDATE SKIP LOCKED` (replicas
take disjoint rows and never wait for each other), flip them to in-flight with a lease and
a fresh claim token, commit. The work (an HTTP call, say) then runs with no row lock held.
Outcomes are recorded guarded by the claim token, so a worker that outlived its lease
cannot overwrite what the next holder recorded. A worker that dies leaves its rows
in-flight until the lease expires; they are then due again (at least once, never lost).

    queue = JobQueue("webhooks", deliveries)
    candidates = sa.select(deliveries.c.id).order_by(deliveries.c.next_attempt_at).limit(100)
    claim = await queue.claim(session, candidates, now=utcnow(), lease_seconds=60)
    await session.commit()
    ...  # do the work, no transaction open
    await session.execute(queue.finish(claim.token, ...))  # or queue.release(claim.token)
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import UTCDateTime

# The statuses a queue may use; each queue's check constraint names those it needs.
PENDING, IN_FLIGHT, DONE, FAILED, PARKED = "pending", "in_flight", "done", "failed", "parked"


def job_columns(*, next_attempt_nullable: bool = False) -> list[sa.Column[Any]]:
    """The columns every queue table carries (add a check constraint on `status`)."""
    return [
        sa.Column("status", sa.String(16), nullable=False, server_default=PENDING),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=next_attempt_nullable),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    ]


def status_check(statuses: Sequence[str]) -> sa.CheckConstraint:
    listed = ", ".join(f"'{status}'" for status in statuses)
    return sa.CheckConstraint(f"status IN ({listed})", name="status")


@dataclass(frozen=True)
class Claim:
    """What one claim took: its token, its lease, and the primary keys of the claimed rows."""

    token: uuid.UUID
    lease_until: datetime
    keys: list[Any]

    def __bool__(self) -> bool:
        return bool(self.keys)


@dataclass(frozen=True)
class QueueDepth:
    """Jobs not finished (pending or in flight), and how long the most overdue one has been due."""

    depth: int
    oldest_due_seconds: float


@dataclass(frozen=True)
class JobQueue:
    """A table of jobs. `pending` and `in_flight` name the statuses a claim moves between
    (a queue whose public API already spells them otherwise keeps its words)."""

    name: str
    table: sa.Table
    pending: str = PENDING
    in_flight: str = IN_FLIGHT

    @property
    def key(self) -> list[sa.Column[Any]]:
        return list(self.table.primary_key.columns)

    def due(self, now: datetime) -> sa.ColumnElement[bool]:
        """Pending and due, or in flight with an expired lease (its worker died)."""
        c = self.table.c
        return sa.or_(
            (c.status == self.pending) & (c.next_attempt_at <= now),
            (c.status == self.in_flight) & (c.lease_until <= now),
        )

    def held(self, token: uuid.UUID) -> sa.ColumnElement[bool]:
        """Rows this claim still holds (the guard of every outcome update)."""
        c = self.table.c
        return (c.claim_token == token) & (c.status == self.in_flight)

    def _lease_values(self, now: datetime, lease_seconds: float, token: uuid.UUID) -> dict[str, Any]:
        return {
            "status": self.in_flight,
            "lease_until": now + timedelta(seconds=lease_seconds),
            "claim_token": token,
        }

    async def claim(
        self, session: AsyncSession, candidates: sa.Select[Any], *, now: datetime, lease_seconds: float
    ) -> Claim:
        """Lease the due rows among `candidates` (a SELECT of this table's primary key
        columns, filtered, ordered and limited by the caller) in one statement. Commit next."""
        picked = candidates.where(self.due(now)).with_for_update(of=self.table, skip_locked=True).cte("picked")
        token = uuid.uuid4()
        statement = (
            self.table.update()
            .where(*(column == picked.c[column.name] for column in self.key))
            .values(**self._lease_values(now, lease_seconds, token))
            .returning(*self.key)
        )
        keys = list((await session.execute(statement)).all())
        return Claim(token, now + timedelta(seconds=lease_seconds), keys)

    async def lease(
        self, session: AsyncSession, which: sa.ColumnElement[bool], *, now: datetime, lease_seconds: float
    ) -> Claim:
        """Lease the due rows matching `which` that the caller has already locked (its own
        `SKIP LOCKED` select, when choosing needs more than one statement)."""
        token = uuid.uuid4()
        statement = (
            self.table.update()
            .where(which, self.due(now))
            .values(**self._lease_values(now, lease_seconds, token))
            .returning(*self.key)
        )
        keys = list((await session.execute(statement)).all())
        return Claim(token, now + timedelta(seconds=lease_seconds), keys)

    def release(self, token: uuid.UUID, which: sa.ColumnElement[bool] | None = None) -> sa.Update:
        """Give rows of a claim back, due as before, without counting an attempt."""
        statement = (
            self.table.update().where(self.held(token)).values(status=self.pending, lease_until=None, claim_token=None)
        )
        return statement if which is None else statement.where(which)

    async def depth(self, session: AsyncSession, now: datetime, where: Sequence[Any] = ()) -> QueueDepth:
        """Unfinished jobs and the age of the oldest due one (for the metrics)."""
        c = self.table.c
        waiting = c.status.in_((self.pending, self.in_flight))
        row = (
            await session.execute(
                sa.select(
                    sa.func.count(),
                    sa.func.min(sa.case(((c.status == self.pending) & (c.next_attempt_at <= now), c.next_attempt_at))),
                ).where(waiting, *where)
            )
        ).one()
        count, oldest = row
        age = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
        return QueueDepth(int(count), age)
