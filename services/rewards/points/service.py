"""The ledger's rules: lock accounts, credit and debit points through lots, write it all at once.

Every change to a member's points runs while its transaction holds the member's account
row (`lock_accounts`, in member id order so batches never deadlock each other). A
`Postings` object collects the entries, lot changes and events of one transaction and
writes them with a handful of multi-row statements (`flush`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts import EventModel
from services.common.contracts.rewards import LevelChanged, PointsAwarded, PointsDeducted
from services.common.db import new_id, table_of
from services.common.events import EventDraft, emit, emit_many
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound
from services.rewards.badges import service as badges
from services.rewards.points import ledger
from services.rewards.points.ledger import InsufficientPoints, MemberErased
from services.rewards.points.models import NEVER, Adjustment
from services.rewards.points.repository import (
    ACCOUNT_UPDATE_COLUMNS,
    BATCH_WRITE,
    CHANGE_LOTS,
    CONSUMPTION_COLUMNS,
    ENTRY_COLUMNS,
    INSERT_CONSUMPTIONS,
    INSERT_ENTRIES,
    LOT_COLUMNS,
    UPSERT_LOTS,
    WRITE_ACCOUNTS,
)
from services.rewards.points.repository import (
    ACCOUNTS as ACCOUNTS,
)
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
from services.rewards.sql import insert_rows, row_params

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


@dataclass
class AccountState:
    """A locked account, changed in memory and written back by `Postings.flush`."""

    member_id: uuid.UUID
    balance: int
    lifetime: int
    last_seq: int
    level_name: str | None
    streak_days: int
    streak_last_date: date | None
    timezone: str | None
    erased_at: datetime | None
    changed: bool = False


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


def _lock_statement(skip_locked: bool) -> Any:
    # One array parameter: the same SQL text (one prepared statement) for any number of ids.
    return (
        sa.select(*ACCOUNT_COLUMNS)
        .where(ACCOUNTS.c.member_id == sa.func.any(sa.bindparam("ids", type_=postgresql.ARRAY(sa.Uuid()))))
        .order_by(ACCOUNTS.c.member_id)
        .with_for_update(skip_locked=skip_locked)
    )


# Hot-path statements are built once, at import: SQLAlchemy memoizes a statement object's
# cache key, so executing one costs no expression building and no cache-key walk.
_LOCK_ACCOUNTS = {skip: _lock_statement(skip) for skip in (True, False)}
NEW_ACCOUNT_COLUMNS = ("member_id", "balance", "lifetime", "last_seq", "streak_days", "created_at", "updated_at")
_CREATE_ACCOUNTS = insert_rows(ACCOUNTS, NEW_ACCOUNT_COLUMNS).on_conflict_do_nothing()


async def select_for_update(
    session: AsyncSession, member_ids: Iterable[uuid.UUID], *, skip_locked: bool = False
) -> dict[uuid.UUID, AccountState]:
    ids = list(set(member_ids))
    rows = await session.execute(_LOCK_ACCOUNTS[skip_locked], {"ids": ids})
    return {row.member_id: AccountState(*row) for row in rows}


async def lock_accounts(
    session: AsyncSession, member_ids: Iterable[uuid.UUID], now: datetime
) -> dict[uuid.UUID, AccountState]:
    """Lock the members' accounts (creating missing ones) for the rest of the transaction."""
    ids = sorted(set(member_ids), key=_uuid_order)
    if not ids:
        return {}
    accounts = await select_for_update(session, ids)
    missing = [member_id for member_id in ids if member_id not in accounts]
    if missing:
        await session.execute(
            _CREATE_ACCOUNTS,
            row_params(
                NEW_ACCOUNT_COLUMNS,
                [
                    {
                        "member_id": member_id,
                        "balance": 0,
                        "lifetime": 0,
                        "last_seq": 0,
                        "streak_days": 0,
                        "created_at": now,
                        "updated_at": now,
                    }
                    for member_id in missing
                ],
            ),
        )
        accounts.update(await select_for_update(session, missing))
    return accounts


@dataclass
class OpenLot:
    id: uuid.UUID
    expires_at: datetime
    remaining: int


OPEN_LOTS = (
    sa.select(LOTS.c.id, LOTS.c.expires_at, LOTS.c.remaining)
    .where(LOTS.c.member_id == sa.bindparam("member_id"), LOTS.c.remaining > 0)
    .order_by(LOTS.c.expires_at, LOTS.c.created_at)
)


async def open_lots(session: AsyncSession, member_id: uuid.UUID) -> list[OpenLot]:
    """The member's lots that still hold points, in the order they are spent (soonest expiry first)."""
    rows = await session.execute(OPEN_LOTS, {"member_id": member_id})
    return [OpenLot(*row) for row in rows]


def lot_expiry(local_date: date, timezone: str, expires_in_days: int | None) -> datetime | None:
    """Points earned on a local day stay valid for `expires_in_days` full days after it and
    expire at the following local midnight, so one day's awards form one lot."""
    if expires_in_days is None:
        return None
    midnight = datetime.combine(local_date + timedelta(days=expires_in_days + 1), datetime.min.time())
    return midnight.replace(tzinfo=ZoneInfo(timezone))


@dataclass
class Postings:
    """The ledger writes of one transaction: entries, lot changes, account updates, events."""

    now: datetime
    entries: list[dict[str, Any]] = field(default_factory=list)
    events: list[EventDraft] = field(default_factory=list)
    lot_credits: dict[tuple[uuid.UUID, datetime], int] = field(default_factory=dict)
    lot_changes: dict[uuid.UUID, int] = field(default_factory=lambda: defaultdict(int))
    consumptions: list[dict[str, Any]] = field(default_factory=list)
    accounts: dict[uuid.UUID, AccountState] = field(default_factory=dict)

    def _entry(self, account: AccountState, delta: int, reason: str, refs: dict[str, Any]) -> dict[str, Any]:
        account.balance += delta
        account.last_seq += 1
        account.changed = True
        self.accounts[account.member_id] = account
        entry = {
            "id": new_id(),
            "member_id": account.member_id,
            "seq": account.last_seq,
            "delta": delta,
            "balance_after": account.balance,
            "reason": reason,
            "rule_id": None,
            "source_event_id": None,
            "community_id": None,
            "redemption_id": None,
            "adjustment_id": None,
            "lot_id": None,
            "skipped_because": None,
            "created_at": self.now,
        }
        entry.update(refs)
        self.entries.append(entry)
        return entry

    def credit(
        self, account: AccountState, points: int, reason: str, *, expires_at: datetime | None = None, **refs: Any
    ) -> dict[str, Any]:
        """New points: they count towards lifetime (levels) and go into a lot."""
        entry = self._entry(account, points, reason, refs)
        account.lifetime += points
        key = (account.member_id, expires_at or NEVER)
        self.lot_credits[key] = self.lot_credits.get(key, 0) + points
        return entry

    def skip(self, account: AccountState, reason: str, because: str, **refs: Any) -> dict[str, Any]:
        """A rule that earned nothing because the member is muted or banned: an entry of 0
        points saying so (it holds the rule's once-per-event key, like an award would)."""
        return self._entry(account, 0, reason, refs | {"skipped_because": because})

    def debit(
        self, account: AccountState, points: int, reason: str, lots: Sequence[OpenLot], **refs: Any
    ) -> dict[str, Any]:
        """Take points from the lots that expire first; never below zero."""
        if points > account.balance:
            raise InsufficientPoints(f"The balance is {account.balance} points; {points} are needed.")
        entry = self._entry(account, -points, reason, refs)
        left = points
        for lot in lots:
            take = min(lot.remaining, left)
            if take <= 0:
                continue
            lot.remaining -= take
            left -= take
            self.lot_changes[lot.id] -= take
            self.consumptions.append({"entry_id": entry["id"], "lot_id": lot.id, "points": take})
            if left == 0:
                break
        if left:
            raise RuntimeError(f"ledger invariant broken: lots of {account.member_id} do not cover its balance")
        return entry

    def restore(
        self, account: AccountState, taken: Sequence[tuple[uuid.UUID, int]], reason: str, **refs: Any
    ) -> dict[str, Any]:
        """Give back points a debit took, to the lots they came from (a refund; not lifetime)."""
        entry = self._entry(account, sum(points for _, points in taken), reason, refs)
        for lot_id, points in taken:
            self.lot_changes[lot_id] += points
        return entry

    def expire(self, account: AccountState, lot: OpenLot) -> dict[str, Any]:
        entry = self._entry(account, -lot.remaining, "expired", {"lot_id": lot.id})
        self.lot_changes[lot.id] -= lot.remaining
        self.consumptions.append({"entry_id": entry["id"], "lot_id": lot.id, "points": lot.remaining})
        lot.remaining = 0
        return entry

    def emit(self, event: EventModel) -> None:
        self.events.append(EventDraft(event, occurred_at=self.now))

    def settle_levels(self, levels: Sequence[LevelInfo]) -> dict[uuid.UUID, int]:
        """Move credited members to the level their lifetime points reach (`level_changed`
        once per crossing); returns each changed account's level rank for level badges."""
        ranks: dict[uuid.UUID, int] = {}
        for account in self.accounts.values():
            now_at = standing(levels, account.lifetime)
            ranks[account.member_id] = now_at.rank
            new_name = now_at.level.name if now_at.level else None
            if new_name == account.level_name:
                continue
            before = next((lv for lv in levels if lv.name == account.level_name), None)
            promoted = now_at.level is not None and (
                now_at.level.min_lifetime_points > (before.min_lifetime_points if before else 0)
            )
            if promoted and now_at.level is not None:
                self.emit(
                    LevelChanged(
                        member_id=account.member_id,
                        level=now_at.level.name,
                        previous_level=account.level_name,
                        lifetime=account.lifetime,
                        rank=now_at.rank,
                        changed_at=self.now,
                    )
                )
            account.level_name = new_name
            account.changed = True
        return ranks

    async def flush(self, session: AsyncSession) -> None:
        """Write it all: one statement per table (column arrays); a batch without new lots
        (debits, refunds) is one statement for all four tables."""
        if self.entries and not self.lot_credits:
            await self._write_in_one(session)
            return
        if self.entries:
            await session.execute(INSERT_ENTRIES, row_params(ENTRY_COLUMNS, self.entries))
        if self.lot_credits:
            await session.execute(
                UPSERT_LOTS,
                row_params(
                    LOT_COLUMNS,
                    [
                        {
                            "id": new_id(),
                            "member_id": member_id,
                            "expires_at": expires_at,
                            "points": points,
                            "remaining": points,
                            "created_at": self.now,
                        }
                        for (member_id, expires_at), points in self.lot_credits.items()
                    ],
                ),
            )
        changes = [(lot_id, delta) for lot_id, delta in self.lot_changes.items() if delta]
        if changes:
            await change_lots(session, changes)
        if self.consumptions:
            await session.execute(INSERT_CONSUMPTIONS, row_params(CONSUMPTION_COLUMNS, self.consumptions))
        await write_accounts(session, self.accounts.values(), self.now)
        if self.events:
            await emit_many(session, self.events)
        self.entries, self.events, self.consumptions = [], [], []
        self.lot_credits, self.lot_changes = {}, defaultdict(int)

    async def _write_in_one(self, session: AsyncSession) -> None:
        """No new lots (debits, refunds, expiry): the whole batch as one statement."""
        if self.events:
            await emit_many(session, self.events)
        changes = [(lot_id, delta) for lot_id, delta in self.lot_changes.items() if delta]
        accounts = [a for a in self.accounts.values() if a.changed]
        params = (
            row_params(ENTRY_COLUMNS, self.entries, prefix="e")
            | {"l_id": [lot_id for lot_id, _ in changes], "l_remaining": [delta for _, delta in changes]}
            | row_params(CONSUMPTION_COLUMNS, self.consumptions, prefix="c")
            | row_params(ACCOUNT_UPDATE_COLUMNS, [vars(a) for a in accounts], prefix="u")
            | {"p_updated_at": self.now}
        )
        await session.execute(BATCH_WRITE, params)
        for account in accounts:
            account.changed = False
        self.entries, self.events, self.consumptions = [], [], []
        self.lot_changes = defaultdict(int)


async def change_lots(session: AsyncSession, changes: Sequence[tuple[uuid.UUID, int]]) -> None:
    """Add each delta to its lot's `remaining` (the CHECK keeps it within 0..points)."""
    await session.execute(
        CHANGE_LOTS, {"a_id": [lot_id for lot_id, _ in changes], "a_remaining": [delta for _, delta in changes]}
    )


async def write_accounts(session: AsyncSession, accounts: Iterable[AccountState], now: datetime) -> None:
    changed = [a for a in accounts if a.changed]
    if not changed:
        return
    rows = [
        {
            "member_id": a.member_id,
            "balance": a.balance,
            "lifetime": a.lifetime,
            "last_seq": a.last_seq,
            "level_name": a.level_name,
            "streak_days": a.streak_days,
            "streak_last_date": a.streak_last_date,
            "timezone": a.timezone,
        }
        for a in changed
    ]
    await session.execute(WRITE_ACCOUNTS, row_params(ACCOUNT_UPDATE_COLUMNS, rows) | {"p_updated_at": now})
    for account in changed:
        account.changed = False


def points_awarded(entry: dict[str, Any], account: AccountState) -> PointsAwarded:
    """The `rewards.points_awarded` event of a credit entry."""
    return PointsAwarded(
        member_id=account.member_id,
        entry_id=entry["id"],
        points=entry["delta"],
        reason=entry["reason"],
        balance=entry["balance_after"],
        lifetime=account.lifetime,
        source_event_id=entry["source_event_id"],
        community_id=entry["community_id"],
        awarded_at=entry["created_at"],
    )


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
