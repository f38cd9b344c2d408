"""Strikes (from upheld reports) and sanctions (warnings, mutes, bans)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.feedback.db import FeedbackModel

SANCTION_STATUSES = ("issued", "active", "expired", "lifted")


class Strike(FeedbackModel, table=True):
    """One upheld report against a member in a community; it counts until `expires_at`
    unless an appeal removed it."""

    __tablename__ = "strikes"
    __table_args__ = (sa.Index("ix_strikes_member", "member_id", "community_id", "expires_at"),)

    id: uuid.UUID = Field(primary_key=True)
    community_id: uuid.UUID
    member_id: uuid.UUID = Field(description="A pseudonym once the member is erased")
    report_id: uuid.UUID | None = None
    rule_code: str = Field(max_length=64)
    created_at: datetime = Field(sa_type=UTCDateTime())
    expires_at: datetime = Field(sa_type=UTCDateTime())
    removed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Sanction(FeedbackModel, table=True):
    """A warning (`issued`), or a mute or ban that is `active` until it expires or is lifted."""

    __tablename__ = "sanctions"
    __table_args__ = (
        sa.CheckConstraint("action IN ('warn', 'mute', 'ban')", name="action"),
        sa.CheckConstraint("status IN ('issued', 'active', 'expired', 'lifted')", name="status"),
        sa.CheckConstraint("end_reason IS NULL OR end_reason IN ('expired', 'lifted', 'appeal')", name="end_reason"),
        sa.Index("ix_sanctions_member", "member_id", "community_id", "created_at"),
        # The expiry job's scan: only sanctions still in force that end by themselves.
        sa.Index("ix_sanctions_due", "until", postgresql_where=sa.text("status = 'active' AND until IS NOT NULL")),
    )

    id: uuid.UUID = Field(primary_key=True)
    community_id: uuid.UUID
    member_id: uuid.UUID = Field(description="A pseudonym once the member is erased")
    action: str = Field(max_length=8)
    rule_code: str = Field(max_length=64)
    reason: str | None = Field(default=None, sa_type=sa.Text())
    report_id: uuid.UUID | None = None
    strike_id: uuid.UUID | None = None
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime())
    until: datetime | None = Field(default=None, sa_type=UTCDateTime())
    status: str = Field(max_length=8)
    ended_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    end_reason: str | None = Field(default=None, max_length=8)
    ended_by: str | None = Field(default=None, max_length=200)
