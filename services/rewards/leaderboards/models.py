"""Points earned per community, member and period: the leaderboards' index."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.rewards.db import RewardsModel


class PeriodPoints(RewardsModel, table=True):
    """Maintained on every award. `period` is week, month or all; `period_start` is the
    community-local Monday, first of the month, or 1970-01-01 for all time. `reached_at`
    is when the member reached these points (earlier ranks first on a tie)."""

    __tablename__ = "period_points"
    __table_args__ = (
        sa.CheckConstraint("points >= 0", name="points_not_negative"),
        sa.Index(
            "ix_period_points_ranking", "community_id", "period", "period_start", "points", "reached_at", "member_id"
        ),
    )

    community_id: uuid.UUID = Field(primary_key=True)
    period: str = Field(primary_key=True, max_length=8)
    period_start: date = Field(primary_key=True)
    member_id: uuid.UUID = Field(primary_key=True)
    points: int
    reached_at: datetime = Field(sa_type=UTCDateTime())
