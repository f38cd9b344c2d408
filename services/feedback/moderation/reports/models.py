"""Reports (queue items) and their filings (one per reporter)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.feedback.db import FeedbackModel


class Report(FeedbackModel, table=True):
    """One item of the review queue. Reports of one message are one item (unique per
    community and message id) with `reporter_count` filings; a report without a message
    stands alone."""

    __tablename__ = "reports"
    __table_args__ = (
        sa.UniqueConstraint("community_id", "message_id"),
        sa.CheckConstraint("status IN ('open', 'dismissed', 'upheld')", name="status"),
        sa.CheckConstraint("reporter_count >= 1", name="reporter_count"),
        sa.Index("ix_reports_queue", "status", "created_at", "id"),
        sa.Index("ix_reports_community_queue", "community_id", "status", "created_at", "id"),
        sa.Index("ix_reports_reported", "reported_member_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    community_id: uuid.UUID
    reported_member_id: uuid.UUID = Field(description="A pseudonym once the member is erased")
    message_id: str | None = Field(default=None, max_length=200)
    rule_code: str | None = Field(default=None, max_length=64)
    status: str = Field(max_length=16)
    reporter_count: int
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    resolved_by: str | None = Field(default=None, max_length=200)
    resolution_note: str | None = Field(default=None, sa_type=sa.Text())
    sanction_id: uuid.UUID | None = None
    strike_id: uuid.UUID | None = None


class ReportFiling(FeedbackModel, table=True):
    """One reporter's report of a queue item, with their evidence. `reporter_id` is
    `member:<id>` (a member, or a partner's bot for them) or the staff caller's key; the
    same reporter files once per item, so a repeat changes nothing."""

    __tablename__ = "report_filings"
    __table_args__ = (sa.Index("ix_report_filings_member", "reporter_member_id"),)

    report_id: uuid.UUID = Field(primary_key=True, foreign_key="reports.id", ondelete="CASCADE")
    reporter_id: str = Field(primary_key=True, max_length=200)
    reporter_member_id: uuid.UUID | None = Field(default=None, description="A pseudonym once the member is erased")
    filed_by: str = Field(max_length=200, description="The caller: the member, the partner key or the staff member")
    evidence: dict[str, Any] = Field(sa_type=postgresql.JSONB())
    note: str | None = Field(default=None, sa_type=sa.Text())
    created_at: datetime = Field(sa_type=UTCDateTime())
