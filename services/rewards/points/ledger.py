"""The ledger's typed API for other domains: debit and refund points, get an `Entry` back.

`debit` takes points from a member's balance (the lots that expire first give them) in
one statement, or raises `InsufficientPoints` / `MemberErased` and writes nothing. A
domain whose own change must go with the debit in one statement (a redemption) builds it
with `DebitSql` (see `points.repository`) and reads the outcome with `debit_outcome`.
"""

from __future__ import annotations

import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.problems import Conflict
from services.rewards.points.repository import DEBIT_STATEMENTS, REFUND_STATEMENTS, DebitSql
from services.rewards.sql import fetch_row

__all__ = [
    "DebitSql",
    "Entry",
    "EntrySource",
    "InsufficientPoints",
    "MemberErased",
    "Stale",
    "debit",
    "debit_outcome",
    "refund",
]

# A statement that found its snapshot older than the account it locked runs again, holding
# the lock: once is enough (see points.repository); more means something else is wrong.
ATTEMPTS = 3


class InsufficientPoints(Conflict):
    slug, title = "insufficient-points", "Insufficient points"


class MemberErased(Conflict):
    slug, title = "member-erased", "Member erased"


@dataclass(frozen=True, slots=True)
class EntrySource:
    """What an entry is for: the redemption or adjustment that made it."""

    column: Literal["redemption_id", "adjustment_id"]
    id: uuid.UUID

    @classmethod
    def redemption(cls, redemption_id: uuid.UUID) -> EntrySource:
        return cls("redemption_id", redemption_id)

    @classmethod
    def adjustment(cls, adjustment_id: uuid.UUID) -> EntrySource:
        return cls("adjustment_id", adjustment_id)


@dataclass(frozen=True, slots=True)
class Entry:
    """A ledger entry as written: `delta` is negative for a debit."""

    id: uuid.UUID
    member_id: uuid.UUID
    seq: int
    delta: int
    balance_after: int
    reason: str
    created_at: datetime


class Stale(Exception):
    """The statement's snapshot predates the account it locked: run it again."""


def debit_outcome(
    row: Mapping[str, Any], *, entry_id: uuid.UUID, member_id: uuid.UUID, points: int, reason: str, now: datetime
) -> Entry:
    """The entry a statement built with `DebitSql` wrote, from its final row (which holds
    `DebitSql.outcome` and the account's `balance`), or the ledger's refusal raised:
    `Stale` (run the statement again), `MemberErased`, `InsufficientPoints`."""
    if row["stale"]:
        raise Stale
    if row["seq"] is None:
        if row["erased"]:
            raise MemberErased("This member was erased.")
        raise InsufficientPoints(f"The balance is {row['balance'] or 0} points; {points} are needed.")
    if row["taken"] != points:
        raise RuntimeError(f"ledger invariant broken: lots of {member_id} do not cover its balance")
    return Entry(entry_id, member_id, row["seq"], -points, row["balance_after"], reason, now)


async def debit(
    session: AsyncSession, member_id: uuid.UUID, points: int, reason: str, source: EntrySource, now: datetime
) -> Entry:
    """Take `points` (> 0) from the member's balance, soonest-expiring lots first, in one
    statement; never below zero. Holds the member's account lock until the transaction ends."""
    if points <= 0:
        raise ValueError("a debit takes a positive number of points")
    entry_id = uuid.uuid4()
    for _ in range(ATTEMPTS):
        row = await fetch_row(
            session, DEBIT_STATEMENTS[source.column], member_id, points, entry_id, reason, source.id, now
        )
        assert row is not None  # the statement always answers one row (see debit_statement)
        try:
            return debit_outcome(row, entry_id=entry_id, member_id=member_id, points=points, reason=reason, now=now)
        except Stale:
            continue
    raise RuntimeError(f"the account of {member_id} kept changing under its lock")


async def refund(
    session: AsyncSession,
    member_id: uuid.UUID,
    debit_entry_id: uuid.UUID,
    reason: str,
    source: EntrySource,
    now: datetime,
) -> Entry:
    """Give a debit's points back to the lots they came from (not new lifetime points)."""
    entry_id = uuid.uuid4()
    row = await fetch_row(
        session, REFUND_STATEMENTS[source.column], member_id, debit_entry_id, entry_id, reason, source.id, now
    )
    if row is None:
        raise RuntimeError(f"entry {debit_entry_id} of {member_id} took no points to give back")
    return Entry(entry_id, member_id, row["seq"], row["points"], row["balance_after"], reason, now)
