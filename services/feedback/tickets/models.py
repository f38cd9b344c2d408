"""Tickets, their comments, CSAT ratings and surveys, agents (for round-robin) and support settings."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.common.jobs import DONE, IN_FLIGHT, PENDING, job_columns, status_check
from services.feedback.db import FeedbackModel, metadata

STATUSES = ("new", "open", "pending", "resolved", "closed")
PRIORITIES = ("low", "normal", "high", "urgent")
CATEGORIES = ("question", "bug", "suggestion", "complaint", "appeal")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


class Ticket(FeedbackModel, table=True):
    """A ticket with its SLA clock: due times, and the due time each breach was announced for."""

    __tablename__ = "tickets"
    __table_args__ = (
        sa.CheckConstraint(_in("status", STATUSES), name="status"),
        sa.CheckConstraint(_in("priority", PRIORITIES), name="priority"),
        sa.CheckConstraint(_in("category", CATEGORIES), name="category"),
        sa.Index("ix_tickets_created", "created_at", "id"),
        sa.Index("ix_tickets_member_created", "member_id", "created_at", "id"),
        sa.Index("ix_tickets_status_created", "status", "created_at", "id"),
        sa.Index("ix_tickets_assignee_created", "assignee_id", "created_at", "id"),
        # The SLA job's scans: only tickets still waiting on that target.
        sa.Index(
            "ix_tickets_first_response_due",
            "first_response_due_at",
            postgresql_where=sa.text("first_response_at IS NULL AND status IN ('new', 'open', 'pending')"),
        ),
        sa.Index(
            "ix_tickets_resolution_due",
            "resolution_due_at",
            postgresql_where=sa.text("status IN ('new', 'open', 'pending')"),
        ),
    )

    id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID = Field(description="The owner (a pseudonym once the member is erased)")
    community_id: uuid.UUID | None = None
    subject: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text())
    category: str = Field(max_length=16)
    priority: str = Field(max_length=16)
    status: str = Field(max_length=16)
    tags: list[str] = Field(default_factory=list, sa_type=postgresql.ARRAY(sa.String(64)))
    assignee_id: uuid.UUID | None = None
    created_by: str = Field(max_length=200)
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())
    first_response_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    resolved_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    closed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    reopened_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    # Minutes to first response / to resolution, in business minutes when the policy says so.
    first_response_minutes: int | None = None
    resolution_minutes: int | None = None
    business_hours_only: bool = False
    first_response_due_at: datetime = Field(sa_type=UTCDateTime())
    resolution_due_at: datetime = Field(sa_type=UTCDateTime())
    # The due time a breach was marked (and announced) for: once per due time.
    first_response_breach_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    resolution_breach_due_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    breached: bool = False
    breached_assignee_id: uuid.UUID | None = None
    csat_requested_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    member_erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
    sanction_id: uuid.UUID | None = Field(default=None, description="The sanction an appeal is about")


class Comment(FeedbackModel, table=True):
    """One message in a ticket's thread; `internal` notes are for agents only."""

    __tablename__ = "ticket_comments"
    __table_args__ = (
        sa.CheckConstraint("author_kind IN ('member', 'agent')", name="author_kind"),
        sa.Index("ix_ticket_comments_thread", "ticket_id", "created_at", "id"),
        sa.Index("ix_ticket_comments_author", "author_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    ticket_id: uuid.UUID = Field(foreign_key="tickets.id", ondelete="CASCADE")
    author_kind: str = Field(max_length=16)
    author_id: str = Field(max_length=200)
    internal: bool = False
    body: str = Field(sa_type=sa.Text())
    created_at: datetime = Field(sa_type=UTCDateTime())


class Rating(FeedbackModel, table=True):
    """A ticket's CSAT rating: one per ticket, by its owner."""

    __tablename__ = "ticket_ratings"

    ticket_id: uuid.UUID = Field(primary_key=True, foreign_key="tickets.id", ondelete="CASCADE")
    member_id: uuid.UUID = Field(index=True)
    rating: int = Field(sa_column_args=[sa.CheckConstraint("rating BETWEEN 1 AND 5", name="rating")])
    comment: str | None = Field(default=None, sa_type=sa.Text())
    created_at: datetime = Field(sa_type=UTCDateTime())


class Agent(FeedbackModel, table=True):
    """A staff member with the agent role, as feedback has seen them (round-robin rotation)."""

    __tablename__ = "agents"

    id: uuid.UUID = Field(primary_key=True)
    disabled: bool = False
    first_seen_at: datetime = Field(sa_type=UTCDateTime())
    last_assigned_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class SupportSettings(FeedbackModel, table=True):
    """The one row of support settings (absent: the defaults)."""

    __tablename__ = "support_settings"

    id: int = Field(primary_key=True)
    reopen_window_days: int
    assignment: str = Field(max_length=16)
    updated_at: datetime = Field(sa_type=UTCDateTime())


# The CSAT survey of a resolved ticket, as a job queue (`services.common.jobs`): written in
# the resolution's transaction, then asked of content by the survey job (`tickets/surveys.py`).
# `pending` until asked (`next_attempt_at`: now, content's `retry_at` after a quiet-hours
# refusal, or a backoff after an outage), `in_flight` while a worker holds its lease, `done`
# once it has an outcome (`requested`, or why no survey was sent).
SURVEY_STATUSES = (PENDING, IN_FLIGHT, DONE)
csat_surveys = sa.Table(
    "csat_surveys",
    metadata,
    sa.Column("ticket_id", sa.Uuid(), sa.ForeignKey("tickets.id", ondelete="CASCADE"), primary_key=True),
    *job_columns(),
    sa.Column("outcome", sa.String(32), nullable=True),
    sa.Column("permit_id", sa.Uuid(), nullable=True),
    sa.Column("enqueued_at", UTCDateTime(), nullable=False),
    sa.Column("updated_at", UTCDateTime(), nullable=False),
    status_check(SURVEY_STATUSES),
    sa.Index(
        "ix_csat_surveys_waiting",
        "next_attempt_at",
        postgresql_where=sa.text("status IN ('pending', 'in_flight')"),
    ),
)
