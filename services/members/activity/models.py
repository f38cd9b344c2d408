"""Recorded activity and the rollups analytics read instead of raw events."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.members.db import MembersModel


class Activity(MembersModel, table=True):
    """One event as it happened; `id` is the client's idempotency key when it chose one.

    No foreign keys: ingest resolves the member and the community in the same request, and
    members are never deleted (erasure keeps the row), so a per-row check would only add
    two index probes and a KEY SHARE lock on the member to every event."""

    __tablename__ = "activities"
    __table_args__ = (sa.Index("ix_activities_member_id_occurred_at", "member_id", "occurred_at"),)

    id: uuid.UUID = Field(primary_key=True)
    community_id: uuid.UUID
    member_id: uuid.UUID
    type: str = Field(max_length=64)
    occurred_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
    # The day in the community's zone when it was recorded.
    local_date: date = Field(nullable=False)
    # NULL once the member is erased: the count survives, what they did does not.
    properties: dict[str, Any] | None = Field(default=None, sa_type=sa.JSON)
    recorded_at: datetime = Field(sa_type=UTCDateTime, nullable=False)


class ActivityDaily(MembersModel, table=True):
    """Events per community, local day and member: DAU/WAU/MAU, retention and churn read this."""

    __tablename__ = "activity_daily"

    community_id: uuid.UUID = Field(primary_key=True)
    local_date: date = Field(primary_key=True)
    member_id: uuid.UUID = Field(primary_key=True)
    events: int = Field(default=0, nullable=False)


class ActivityHourly(MembersModel, table=True):
    """Events per community, local day and local hour: the weekday x hour heat map reads this."""

    __tablename__ = "activity_hourly"

    community_id: uuid.UUID = Field(primary_key=True)
    local_date: date = Field(primary_key=True)
    hour: int = Field(primary_key=True, ge=0, le=23)
    weekday: int = Field(nullable=False, description="0 = Monday ... 6 = Sunday")
    events: int = Field(default=0, nullable=False)


class MemberActivity(MembersModel, table=True):
    """When each member was last active: the latest `occurred_at` of their events.

    Kept off the `members` row, which is wide and indexed: ingest moves it forward once
    per member and batch (an upsert on this narrow table, a HOT update), and readers see it
    as `Member.last_active_at` (see `profiles.models`). No row: never active."""

    __tablename__ = "member_activity"

    member_id: uuid.UUID = Field(foreign_key="members.id", ondelete="CASCADE", primary_key=True)
    last_active_at: datetime = Field(sa_type=UTCDateTime, nullable=False)
