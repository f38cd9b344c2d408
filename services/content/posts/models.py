"""The posts table."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.content.db import ContentModel

POST_KINDS = ("announcement", "promotion", "activity", "poll", "tip")
POST_STATUSES = ("draft", "in_review", "approved", "rejected", "scheduled", "published")


class Post(ContentModel, table=True):
    """A post. `calendar_at` is where the calendar puts it: its publication time once it has
    one (scheduled or published), its creation time before."""

    __tablename__ = "posts"
    __table_args__ = (
        sa.CheckConstraint(f"kind IN {POST_KINDS}", name="kind_known"),
        sa.CheckConstraint(f"status IN {POST_STATUSES}", name="status_known"),
        sa.CheckConstraint("status NOT IN ('scheduled', 'published') OR publish_at IS NOT NULL", name="publish_at_set"),
        sa.CheckConstraint("(override_by IS NULL) = (override_at IS NULL)", name="override_both_or_none"),
        sa.Index("ix_posts_community_id_calendar_at_id", "community_id", "calendar_at", "id"),
        # The calendar of one status (e.g. what is in review this month): no rows read to be dropped.
        sa.Index("ix_posts_community_id_status_calendar_at_id", "community_id", "status", "calendar_at", "id"),
        sa.Index("ix_posts_calendar_at_id", "calendar_at", "id"),
        # The publisher's queue: only scheduled posts, by due time.
        sa.Index(
            "ix_posts_due",
            "publish_at",
            postgresql_where=sa.text("status = 'scheduled'"),
        ),
        # The policy checks: a community's scheduled and published posts by time.
        sa.Index(
            "ix_posts_community_id_publish_at",
            "community_id",
            "publish_at",
            postgresql_where=sa.text("status IN ('scheduled', 'published')"),
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    community_id: uuid.UUID
    title: str = Field(max_length=200)
    body: str
    kind: str = Field(max_length=16)
    status: str = Field(max_length=16)
    options: list[str] | None = Field(default=None, sa_type=postgresql.JSONB())
    publish_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    published_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    calendar_at: datetime = Field(sa_type=UTCDateTime())
    author_id: uuid.UUID
    reviewer_id: uuid.UUID | None = None
    rejection_reason: str | None = None
    # The compliance check's flags as of `compliance_checked_at` (null: not checked since the
    # last edit); a reviewer's explicit override of them, recorded at approval.
    compliance_flags: list[dict[str, Any]] | None = Field(default=None, sa_type=postgresql.JSONB())
    compliance_checked_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    override_by: uuid.UUID | None = None
    override_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())
