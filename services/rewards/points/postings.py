"""How a transaction's ledger writes are collected and written: `Postings` gathers the entries,
lot changes, account updates and events of one transaction (earning batches, expiry, manual
credits) and writes them with a handful of multi-row statements (`flush`), one statement when
no lot is created. The accounts it changes are locked first (`service.lock_accounts`).
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts import EventModel
from services.common.contracts.rewards import LevelChanged, PointsAwarded
from services.common.db import new_ids
from services.common.events import EventDraft, emit_batch, emit_many
from services.rewards.points.models import NEVER
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
from services.rewards.program.service import LevelInfo, standing
from services.rewards.sql import row_params


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


@dataclass
class OpenLot:
    id: uuid.UUID
    expires_at: datetime
    remaining: int


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
    # Ids drawn a batch at a time (`new_ids`: one read of the OS's randomness for many).
    _spare_ids: list[uuid.UUID] = field(default_factory=list)

    def _new_id(self) -> uuid.UUID:
        if not self._spare_ids:
            self._spare_ids = new_ids(256)
        return self._spare_ids.pop()

    def _entry(self, account: AccountState, delta: int, reason: str, refs: dict[str, Any]) -> dict[str, Any]:
        account.balance += delta
        account.last_seq += 1
        account.changed = True
        self.accounts[account.member_id] = account
        entry = {
            "id": self._new_id(),
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
        (expiry, 0-point skips) is one statement for all four tables."""
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
                            "id": self._new_id(),
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
        await self._write_events(session)
        self.entries, self.events, self.consumptions = [], [], []
        self.lot_credits, self.lot_changes = {}, defaultdict(int)

    async def _write_events(self, session: AsyncSession) -> None:
        """The events, a type at a time in the order they were first emitted. Many of one type
        (an earning batch's awards) go as ONE batch outbox row, one pending row per subscriber
        instead of one each per event; the relay still delivers each event on its own, with
        its own id (see `services.common.events.outbox`)."""
        by_type: dict[type[EventModel], list[EventDraft]] = {}
        for draft in self.events:
            by_type.setdefault(type(draft.event), []).append(draft)
        for contract, drafts in by_type.items():
            if len(drafts) == 1:
                await emit_many(session, drafts)
                continue
            occurred = [draft.occurred_at or self.now for draft in drafts]
            fresh = iter(new_ids(len(drafts)))
            ids = [draft.id or next(fresh) for draft in drafts]  # an id a draft chose is kept, as emit_many does
            await emit_batch(session, contract, ids, occurred, [draft.event for draft in drafts])

    async def _write_in_one(self, session: AsyncSession) -> None:
        """No new lots (expiry, 0-point skips): the whole batch as one statement."""
        await self._write_events(session)
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
