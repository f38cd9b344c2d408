"""Points earned per community, member and period: the leaderboards' index, and how many
members hold each points value on each board (the ranks' histogram)."""

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
    __table_args__ = (sa.CheckConstraint("points >= 0", name="points_not_negative"),)

    community_id: uuid.UUID = Field(primary_key=True)
    period: str = Field(primary_key=True, max_length=8)
    period_start: date = Field(primary_key=True)
    member_id: uuid.UUID = Field(primary_key=True)
    points: int = Field(sa_type=sa.BigInteger())
    reached_at: datetime = Field(sa_type=UTCDateTime())


_points = PeriodPoints.__table__.c  # type: ignore[attr-defined]
# In the board's order (points descending), so the top N is the first N index entries.
sa.Index(
    "ix_period_points_ranking",
    _points.community_id,
    _points.period,
    _points.period_start,
    _points.points.desc(),
    _points.reached_at,
    _points.member_id,
)


class PeriodPointsCount(RewardsModel, table=True):
    """How many members of a board hold exactly `points` (> 0), kept in the same transaction
    as `period_points`: a rank is one plus the members on higher values, summed over a few
    thousand rows here rather than counted over every member ahead. Counts may reach 0 and
    stay (a zero adds nothing to a sum)."""

    __tablename__ = "period_points_counts"

    community_id: uuid.UUID = Field(primary_key=True)
    period: str = Field(primary_key=True, max_length=8)
    period_start: date = Field(primary_key=True)
    points: int = Field(primary_key=True, sa_type=sa.BigInteger())
    members: int
