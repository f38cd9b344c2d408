"""The reward catalog and redemptions."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.rewards.db import RewardsModel


class Reward(RewardsModel, table=True):
    """A reward members can redeem points for. Its stock lives in `reward_stock` buckets;
    a reward without buckets is unlimited."""

    __tablename__ = "rewards"
    __table_args__ = (
        sa.CheckConstraint("cost > 0", name="cost_positive"),
        sa.CheckConstraint("per_member_limit IS NULL OR per_member_limit > 0", name="limit_positive"),
    )

    id: uuid.UUID = Field(primary_key=True)
    name: str = Field(max_length=200)
    description: str = Field(max_length=2000)
    cost: int = Field(sa_type=sa.BigInteger())
    per_member_limit: int | None = None
    active_from: datetime | None = Field(default=None, sa_type=UTCDateTime())
    active_to: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(sa_type=UTCDateTime(), index=True)
    updated_at: datetime = Field(sa_type=UTCDateTime())


class RewardStock(RewardsModel, table=True):
    """One bucket of a reward's stock: the units left are the sum over its buckets.

    A redemption takes its unit from any bucket that has one and is not locked by another
    redemption (`FOR UPDATE SKIP LOCKED`), so concurrent redemptions of one reward do not
    queue behind a single row lock held until commit. Never below zero (CHECK)."""

    __tablename__ = "reward_stock"
    __table_args__ = (sa.CheckConstraint("remaining >= 0", name="remaining_not_negative"),)

    reward_id: uuid.UUID = Field(primary_key=True, foreign_key="rewards.id", ondelete="CASCADE")
    bucket: int = Field(primary_key=True, sa_type=sa.SmallInteger())
    remaining: int


class Redemption(RewardsModel, table=True):
    __tablename__ = "redemptions"
    __table_args__ = (
        sa.CheckConstraint("cost > 0", name="cost_positive"),
        sa.Index("ix_redemptions_member_id_reward_id", "member_id", "reward_id"),
        sa.Index("ix_redemptions_created_at_id", "created_at", "id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID
    reward_id: uuid.UUID = Field(index=True)
    cost: int = Field(sa_type=sa.BigInteger())
    status: str = Field(max_length=16)
    entry_id: uuid.UUID
    created_at: datetime = Field(sa_type=UTCDateTime())
    fulfilled_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    cancelled_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    cancelled_by: str | None = Field(default=None, max_length=200)
