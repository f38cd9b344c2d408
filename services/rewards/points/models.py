"""The points ledger: one account per member, append-only entries, expiring lots.

Every change to a member's points happens while holding that member's account row lock,
so balance, entry sequence and lots move together. Invariants held by the database:
balance and every `balance_after` >= 0, one entry per (member, seq), one award per
(source event, rule), lots never below zero or above what they were credited.
"""

from __future__ import annotations

import uuid
from datetime import UTC, date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.rewards.db import RewardsModel

# Lots without an expiry sort after every dated lot (FIFO is "by expiry, then creation").
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


class Account(RewardsModel, table=True):
    __tablename__ = "accounts"
    __table_args__ = (
        sa.CheckConstraint("balance >= 0", name="balance_not_negative"),
        sa.CheckConstraint("lifetime >= 0", name="lifetime_not_negative"),
    )

    member_id: uuid.UUID = Field(primary_key=True)
    balance: int = Field(sa_type=sa.BigInteger())
    lifetime: int = Field(sa_type=sa.BigInteger())
    last_seq: int
    level_name: str | None = Field(default=None, max_length=50)
    streak_days: int
    streak_last_date: date | None = None
    timezone: str | None = Field(default=None, max_length=64)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())


class LedgerEntry(RewardsModel, table=True):
    __tablename__ = "ledger_entries"
    __table_args__ = (
        sa.UniqueConstraint("member_id", "seq"),
        sa.UniqueConstraint("source_event_id", "rule_id"),
        # Only a rule skipped while the member is muted or banned writes an entry of 0 points.
        sa.CheckConstraint("(delta <> 0) = (skipped_because IS NULL)", name="delta_zero_only_when_skipped"),
        sa.CheckConstraint("balance_after >= 0", name="balance_after_not_negative"),
    )

    id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID
    seq: int
    delta: int = Field(sa_type=sa.BigInteger())
    balance_after: int = Field(sa_type=sa.BigInteger())
    reason: str = Field(max_length=120)
    rule_id: uuid.UUID | None = None
    source_event_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    redemption_id: uuid.UUID | None = Field(default=None, index=True)
    adjustment_id: uuid.UUID | None = None
    lot_id: uuid.UUID | None = None
    skipped_because: str | None = Field(
        default=None, max_length=16, description="muted or banned: the rule earned nothing (delta 0)"
    )
    created_at: datetime = Field(sa_type=UTCDateTime())


class Lot(RewardsModel, table=True):
    """Credited points that expire together: one lot per member and expiry instant (expiry is
    rounded to a local midnight, so a day's awards share a lot)."""

    __tablename__ = "lots"
    __table_args__ = (
        sa.UniqueConstraint("member_id", "expires_at"),
        sa.CheckConstraint("remaining >= 0 AND remaining <= points", name="remaining_in_range"),
        # The expiry job only looks at lots that still hold points. The index names `open`,
        # not `remaining`: an update that changes an indexed column (predicates count) cannot
        # be HOT, and every debit changes `remaining`, while `open` changes only when a lot
        # empties or is refilled.
        sa.Index("ix_lots_open_expires_at", "expires_at", postgresql_where=sa.text("open")),
    )

    id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID
    expires_at: datetime = Field(sa_type=UTCDateTime())
    points: int = Field(sa_type=sa.BigInteger())
    remaining: int = Field(sa_type=sa.BigInteger())
    # Whether the lot still holds points, kept by Postgres (never written).
    open: bool = Field(sa_column=sa.Column(sa.Boolean(), sa.Computed("remaining > 0", persisted=True), nullable=False))
    created_at: datetime = Field(sa_type=UTCDateTime())


class LotConsumption(RewardsModel, table=True):
    """Which lots a debit took its points from (a refund puts them back where they came from)."""

    __tablename__ = "lot_consumptions"
    __table_args__ = (sa.CheckConstraint("points > 0", name="points_positive"),)

    entry_id: uuid.UUID = Field(primary_key=True)
    lot_id: uuid.UUID = Field(primary_key=True)
    points: int = Field(sa_type=sa.BigInteger())


class Adjustment(RewardsModel, table=True):
    __tablename__ = "adjustments"

    id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID = Field(index=True)
    delta: int = Field(sa_type=sa.BigInteger())
    reason: str = Field(max_length=500)
    created_by: str = Field(max_length=200)
    entry_id: uuid.UUID
    created_at: datetime = Field(sa_type=UTCDateTime())
