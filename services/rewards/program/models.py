"""The earning program: rules (what earns points) and levels (what lifetime points mean)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.rewards.db import RewardsModel


class Program(RewardsModel, table=True):
    """A single row, present once the program exists; edits lock it so they never interleave."""

    __tablename__ = "program"
    __table_args__ = (sa.CheckConstraint("id = 1", name="single_row"),)

    id: int = Field(primary_key=True, sa_column_kwargs={"autoincrement": False})
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())


class EarningRule(RewardsModel, table=True):
    """Points for an activity type, optionally only in one community. A rule keeps its id
    across edits (matched by event type and community), so daily caps and the once-per-event
    key survive a PUT; a rule left out of a PUT is deactivated, never deleted."""

    __tablename__ = "earning_rules"
    __table_args__ = (
        sa.CheckConstraint("points > 0", name="points_positive"),
        sa.CheckConstraint("daily_cap IS NULL OR daily_cap >= points", name="cap_at_least_points"),
        sa.CheckConstraint("expires_in_days IS NULL OR expires_in_days > 0", name="expiry_positive"),
        sa.Index("ix_earning_rules_event_type_community_id", "event_type", "community_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    event_type: str = Field(max_length=100)
    community_id: uuid.UUID | None = None
    points: int = Field(sa_type=sa.BigInteger())
    daily_cap: int | None = Field(default=None, sa_type=sa.BigInteger())
    expires_in_days: int | None = None
    position: int
    active: bool
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())


class Level(RewardsModel, table=True):
    __tablename__ = "levels"
    __table_args__ = (sa.CheckConstraint("min_lifetime_points >= 0", name="min_not_negative"),)

    name: str = Field(primary_key=True, max_length=50)
    min_lifetime_points: int = Field(unique=True, sa_type=sa.BigInteger())
