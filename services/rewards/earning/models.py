"""What earning needs to remember: daily caps, activity counts, check-in days, community zones."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.rewards.db import RewardsModel


class DailyEarning(RewardsModel, table=True):
    """Points a capped rule gave a member on one local day."""

    __tablename__ = "daily_earnings"
    __table_args__ = (sa.CheckConstraint("points >= 0", name="points_not_negative"),)

    member_id: uuid.UUID = Field(primary_key=True)
    rule_id: uuid.UUID = Field(primary_key=True)
    local_date: date = Field(primary_key=True)
    points: int = Field(sa_type=sa.BigInteger())


class ActivityCount(RewardsModel, table=True):
    """How many activities of a type a member has done (badges `{event_type, count}`)."""

    __tablename__ = "activity_counts"

    member_id: uuid.UUID = Field(primary_key=True)
    event_type: str = Field(primary_key=True, max_length=100)
    total: int


class CheckInDay(RewardsModel, table=True):
    """A local day on which a member checked in (a second check-in that day adds nothing)."""

    __tablename__ = "check_in_days"

    member_id: uuid.UUID = Field(primary_key=True)
    local_date: date = Field(primary_key=True)


class Community(RewardsModel, table=True):
    """A community's time zone as last seen on its activity (leaderboards' week and month)."""

    __tablename__ = "communities"

    id: uuid.UUID = Field(primary_key=True)
    timezone: str = Field(max_length=64)
    updated_at: datetime = Field(sa_type=UTCDateTime())


class MemberSanction(RewardsModel, table=True):
    """A mute or ban in a community, from `moderation.sanction_applied` / `sanction_lifted`
    (event-carried state: earning never asks feedback). Either event may arrive first; the
    row holds while `applied_at <= t < until` and before `lifted_at`."""

    __tablename__ = "member_sanctions"
    __table_args__ = (sa.Index("ix_member_sanctions_member", "member_id", "community_id"),)

    sanction_id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID
    community_id: uuid.UUID
    action: str = Field(max_length=8)
    applied_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    lifted_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
