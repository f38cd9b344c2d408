"""The ledger's rules: lock accounts, credit points, adjustments, reading balances and entries.

Every change to a member's points runs while its transaction holds the member's account
row (`lock_accounts`, in member id order so batches never deadlock each other). Credits
go through a `Postings` batch (`points.postings`); debits and refunds are single
statements behind the typed API other domains use (`points.ledger`).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable, Sequence
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.rewards import PointsDeducted
from services.common.db import new_id, table_of
from services.common.events import emit
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound
from services.rewards.badges import service as badges
from services.rewards.points import ledger
from services.rewards.points.ledger import MemberErased
from services.rewards.points.models import NEVER, Adjustment
from services.rewards.points.postings import AccountState as AccountState
from services.rewards.points.postings import OpenLot as OpenLot
from services.rewards.points.postings import Postings as Postings
from services.rewards.points.postings import points_awarded as points_awarded
from services.rewards.points.repository import (
    ACCOUNTS as ACCOUNTS,
)
from services.rewards.points.repository import CREATE_MISSING_ACCOUNTS, LOCK_ACCOUNTS
from services.rewards.points.repository import (
    ENTRIES as ENTRIES,
)
from services.rewards.points.repository import (
    LOTS as LOTS,
)
from services.rewards.points.schemas import (
    AdjustmentRead,
    ExpiringPoints,
    LedgerEntryRead,
    LedgerPage,
    LevelStanding,
    PointsRead,
)
from services.rewards.program.service import LevelInfo, standing
from services.rewards.sql import fetch_rows

ADJUSTMENTS = table_of(Adjustment)


async def ensure_not_erased(session: AsyncSession, member_id: uuid.UUID) -> None:
    erased_at = await session.scalar(sa.select(ACCOUNTS.c.erased_at).where(ACCOUNTS.c.member_id == member_id))
    if erased_at is not None:
        raise NotFound("No such member.")  # gone for every reader, as in members


class PointsLimitReached(Conflict):
    slug, title = "points-limit", "Points limit reached"


# The most points a balance or lifetime total may reach: the largest integer every client
# reads exactly from JSON (JavaScript's Number.MAX_SAFE_INTEGER). The BIGINT columns hold
# about a thousand times more, so sums across members or periods never overflow either.
MAX_POINTS = 2**53 - 1


def _uuid_order(value: uuid.UUID) -> int:
    return value.int


ACCOUNT_COLUMNS = (
    ACCOUNTS.c.member_id,
    ACCOUNTS.c.balance,
    ACCOUNTS.c.lifetime,
    ACCOUNTS.c.last_seq,
    ACCOUNTS.c.level_name,
    ACCOUNTS.c.streak_days,
    ACCOUNTS.c.streak_last_date,
    ACCOUNTS.c.timezone,
    ACCOUNTS.c.erased_at,
)


def _lock_order(member_ids: Iterable[uuid.UUID]) -> list[uuid.UUID]:
    # Postgres orders uuids as unsigned 128-bit numbers, as `.int` does.
    return sorted(set(member_ids), key=_uuid_order)


async def select_for_update(
    session: AsyncSession, member_ids: Iterable[uuid.UUID], *, skip_locked: bool = False
) -> dict[uuid.UUID, AccountState]:
    """Lock the members' existing accounts, in member id order (members without one are left out)."""
    rows = await fetch_rows(session, LOCK_ACCOUNTS[skip_locked], _lock_order(member_ids))
    return {row.member_id: AccountState(*row) for row in rows}


async def lock_accounts(
    session: AsyncSession, member_ids: Iterable[uuid.UUID], now: datetime
) -> dict[uuid.UUID, AccountState]:
    """Lock the members' accounts (creating missing ones) for the rest of the transaction,
    in member id order (see `CREATE_MISSING_ACCOUNTS` for why creation comes first)."""
    ids = _lock_order(member_ids)
    if not ids:
        return {}
    connection = await session.connection()
    await connection.exec_driver_sql(CREATE_MISSING_ACCOUNTS, (ids, now))
    return await select_for_update(session, ids)


def lot_expiry(local_date: date, timezone: str, expires_in_days: int | None) -> datetime | None:
    """Points earned on a local day stay valid for `expires_in_days` full days after it and
    expire at the following local midnight, so one day's awards form one lot."""
    if expires_in_days is None:
        return None
    midnight = datetime.combine(local_date + timedelta(days=expires_in_days + 1), datetime.min.time())
    return midnight.replace(tzinfo=ZoneInfo(timezone))


async def adjust(
    session: AsyncSession,
    *,
    member_id: uuid.UUID,
    delta: int,
    reason: str,
    by: str,
    levels: Sequence[LevelInfo],
    now: datetime,
) -> AdjustmentRead:
    """A manual credit (counts towards levels, no expiry) or debit (oldest lots first, never below zero)."""
    adjustment_id = new_id()
    if delta < 0:
        debited = await ledger.debit(
            session, member_id, -delta, "adjustment", ledger.EntrySource.adjustment(adjustment_id), now
        )
        entry_id, balance_after = debited.id, debited.balance_after
        await emit(
            session,
            PointsDeducted(
                member_id=member_id,
                entry_id=entry_id,
                points=-delta,
                reason="adjustment",
                balance=balance_after,
                deducted_at=now,
            ),
            occurred_at=now,
        )
        ranks: dict[uuid.UUID, int] = {}
    else:
        account = (await lock_accounts(session, [member_id], now))[member_id]
        if account.erased_at is not None:
            raise MemberErased("This member was erased.")
        if max(account.balance, account.lifetime) + delta > MAX_POINTS:
            raise PointsLimitReached(f"A balance or lifetime total cannot exceed {MAX_POINTS:,} points.")
        postings = Postings(now)
        entry = postings.credit(account, delta, "adjustment", adjustment_id=adjustment_id)
        postings.emit(points_awarded(entry, account))
        ranks = postings.settle_levels(levels)
        await postings.flush(session)
        entry_id, balance_after = entry["id"], entry["balance_after"]
    row = {
        "id": adjustment_id,
        "member_id": member_id,
        "delta": delta,
        "reason": reason,
        "created_by": by,
        "entry_id": entry_id,
        "created_at": now,
    }
    await session.execute(ADJUSTMENTS.insert().values(**row))
    await badges.award_earned(session, now=now, levels=levels, level_ranks=ranks)
    return AdjustmentRead(**row, balance_after=balance_after)


def current_streak(account: Any, now: datetime) -> int:
    """The streak still counts while the last check-in was today or yesterday (member's zone)."""
    if not account.streak_days or account.streak_last_date is None:
        return 0
    today = now.astimezone(ZoneInfo(account.timezone or "UTC")).date()
    return int(account.streak_days) if account.streak_last_date >= today - timedelta(days=1) else 0


async def read_points(
    session: AsyncSession,
    member_id: uuid.UUID,
    levels: Sequence[LevelInfo],
    now: datetime,
    *,
    including_erased: bool = False,
) -> PointsRead:
    """The member's points; an erased member's are a 404 except to their export (`including_erased`)."""
    account = (
        await session.execute(sa.select(*ACCOUNT_COLUMNS).where(ACCOUNTS.c.member_id == member_id))
    ).one_or_none()
    if account is not None and account.erased_at is not None and not including_erased:
        raise NotFound("No such member.")  # as `ensure_not_erased`, from the row read here anyway
    balance = account.balance if account else 0
    lifetime = account.lifetime if account else 0
    at = standing(levels, lifetime)
    expiring = await session.execute(
        sa.select(LOTS.c.expires_at, LOTS.c.remaining)
        .where(LOTS.c.member_id == member_id, LOTS.c.remaining > 0, LOTS.c.expires_at < NEVER)
        .order_by(LOTS.c.expires_at)
        .limit(20)
    )
    return PointsRead(
        member_id=member_id,
        balance=balance,
        lifetime=lifetime,
        level=LevelStanding(
            name=at.level.name if at.level else None,
            next_name=at.next.name if at.next else None,
            next_at=at.next.min_lifetime_points if at.next else None,
        ),
        streak_days=current_streak(account, now) if account else 0,
        expiring=[ExpiringPoints(points=row.remaining, expires_at=row.expires_at) for row in expiring],
    )


async def ledger_page(session: AsyncSession, member_id: uuid.UUID, page: PageParams) -> LedgerPage:
    """The member's entries, newest first (by their sequence number)."""
    query = (
        sa.select(ENTRIES).where(ENTRIES.c.member_id == member_id).order_by(ENTRIES.c.seq.desc()).limit(page.limit + 1)
    )
    if (after := keyset_after([ENTRIES.c.seq], page.cursor, descending=True)) is not None:
        query = query.where(after)
    rows = (await session.execute(query)).all()
    items, cursor = paginate_rows(rows, page.limit, lambda row: [row.seq])
    return LedgerPage(
        items=[LedgerEntryRead.model_validate(row, from_attributes=True) for row in items], next_cursor=cursor
    )
