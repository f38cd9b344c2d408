"""Badges and who holds them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.rewards.db import RewardsModel


class Badge(RewardsModel, table=True):
    """A badge; its criterion is kept both as given (`criteria`) and flattened for queries."""

    __tablename__ = "badges"

    code: str = Field(primary_key=True, max_length=64)
    name: str = Field(max_length=100)
    description: str = Field(max_length=1000)
    criteria: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON())
    event_type: str | None = Field(default=None, max_length=100)
    event_count: int | None = None
    streak_days: int | None = None
    level: str | None = Field(default=None, max_length=50)
    created_at: datetime = Field(sa_type=UTCDateTime())


class MemberBadge(RewardsModel, table=True):
    """A badge awarded to a member: once, by the primary key."""

    __tablename__ = "member_badges"

    member_id: uuid.UUID = Field(primary_key=True)
    badge_code: str = Field(primary_key=True, max_length=64)
    awarded_at: datetime = Field(sa_type=UTCDateTime())
    awarded_by: str | None = Field(default=None, max_length=200)
