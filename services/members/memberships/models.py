"""Who belongs to which community, since when (kept after leaving, for cohort analytics)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.members.db import MembersModel


class Membership(MembersModel, table=True):
    __tablename__ = "memberships"
    __table_args__ = (sa.Index("ix_memberships_member_id", "member_id"),)

    community_id: uuid.UUID = Field(foreign_key="communities.id", primary_key=True)
    member_id: uuid.UUID = Field(foreign_key="members.id", ondelete="CASCADE", primary_key=True)
    joined_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # The local day of joining in the community's zone: retention cohorts group by it.
    joined_date: date = Field(nullable=False)
    left_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
