"""Event-carried state about communities and members (members owns the truth)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.content.db import ContentModel


class CommunityZone(ContentModel, table=True):
    """A community's IANA time zone, as members last told it (its API or `activity.recorded`)."""

    __tablename__ = "community_zones"

    community_id: uuid.UUID = Field(primary_key=True)
    timezone: str = Field(max_length=64)
    updated_at: datetime = Field(sa_type=UTCDateTime())


class CommunityMember(ContentModel, table=True):
    """A current membership, from `member.joined_community` / `member.left_community`."""

    __tablename__ = "community_members"

    community_id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID = Field(primary_key=True, index=True)
    joined_at: datetime = Field(sa_type=UTCDateTime())


class MemberConsent(ContentModel, table=True):
    """A member's marketing consent, from `member.created` / `member.updated`."""

    __tablename__ = "member_consents"

    member_id: uuid.UUID = Field(primary_key=True)
    marketing: bool
    updated_at: datetime = Field(sa_type=UTCDateTime())


class ActivityHour(ContentModel, table=True):
    """Activities of a community per local week and hour of the week (0 = Monday 00:00 local):
    the compact histogram behind best times, fed by `activity.recorded`."""

    __tablename__ = "activity_hours"
    __table_args__ = (sa.CheckConstraint("hour_of_week BETWEEN 0 AND 167", name="hour_of_week_range"),)

    community_id: uuid.UUID = Field(primary_key=True)
    week_start: date = Field(primary_key=True)
    hour_of_week: int = Field(primary_key=True, sa_type=sa.SmallInteger())
    activities: int = Field(sa_type=sa.BigInteger())
