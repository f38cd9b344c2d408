"""Contact policies, permits and the per-member budget row that serialises grants."""

from __future__ import annotations

import uuid
from datetime import datetime, time

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.content.db import ContentModel

CONTACT_KINDS = ("promotion", "announcement", "survey", "reminder", "reply")


class ContactPolicy(ContentModel, table=True):
    __tablename__ = "contact_policies"
    __table_args__ = (
        sa.CheckConstraint("weekly_max >= 0", name="weekly_max_not_negative"),
        sa.CheckConstraint("weekly_max_promotions >= 0", name="promotions_not_negative"),
        sa.CheckConstraint("(quiet_start IS NULL) = (quiet_end IS NULL)", name="quiet_both_or_none"),
    )

    community_id: uuid.UUID = Field(primary_key=True)
    weekly_max: int
    weekly_max_promotions: int
    quiet_start: time | None = None
    quiet_end: time | None = None
    updated_at: datetime = Field(sa_type=UTCDateTime())


class ContactBudget(ContentModel, table=True):
    """One row per member ever asked about: grants lock it, so a grant's count and insert
    are one atomic step per member (concurrent requests for one member queue here)."""

    __tablename__ = "contact_budgets"

    member_id: uuid.UUID = Field(primary_key=True)
    created_at: datetime = Field(sa_type=UTCDateTime())


class ContactPermit(ContentModel, table=True):
    """A granted touch (replies are never recorded: they never count)."""

    __tablename__ = "contact_permits"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {CONTACT_KINDS}", name="kind_known"),
        sa.Index("ix_contact_permits_member_id_granted_at", "member_id", "granted_at"),
    )

    id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID
    community_id: uuid.UUID
    kind: str = Field(max_length=16)
    requested_by: str = Field(max_length=200)
    granted_at: datetime = Field(sa_type=UTCDateTime())
