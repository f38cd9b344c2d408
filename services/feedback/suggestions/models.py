"""The suggestion board: suggestions, votes, and members' levels learned from rewards."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.feedback.db import FeedbackModel

SUGGESTION_STATUSES = ("open", "planned", "in_progress", "done", "declined")


class Suggestion(FeedbackModel, table=True):
    """A member's suggestion; `votes` and `score` are kept with each vote (no count on read)."""

    __tablename__ = "suggestions"
    __table_args__ = (
        sa.CheckConstraint("status IN ('open', 'planned', 'in_progress', 'done', 'declined')", name="status"),
        sa.Index("ix_suggestions_new", "community_id", "created_at", "id"),
        sa.Index("ix_suggestions_top", "community_id", "score", "id"),
        sa.Index("ix_suggestions_member", "member_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    community_id: uuid.UUID
    member_id: uuid.UUID
    title: str = Field(max_length=200)
    body: str = Field(sa_type=sa.Text())
    status: str = Field(max_length=16)
    response: str | None = Field(default=None, sa_type=sa.Text())
    votes: int = 0
    score: int = 0
    created_at: datetime = Field(sa_type=UTCDateTime())
    updated_at: datetime = Field(sa_type=UTCDateTime())
    completed_at: datetime | None = Field(default=None, sa_type=UTCDateTime())


class Vote(FeedbackModel, table=True):
    """One member's vote, with the weight it adds to the score (1 + the voter's level rank)."""

    __tablename__ = "suggestion_votes"
    __table_args__ = (sa.Index("ix_suggestion_votes_member", "member_id"),)

    suggestion_id: uuid.UUID = Field(primary_key=True, foreign_key="suggestions.id", ondelete="CASCADE")
    member_id: uuid.UUID = Field(primary_key=True)
    weight: int
    created_at: datetime = Field(sa_type=UTCDateTime())


class MemberLevel(FeedbackModel, table=True):
    """A member's level in rewards, from `rewards.level_changed` (event-carried state)."""

    __tablename__ = "member_levels"

    member_id: uuid.UUID = Field(primary_key=True)
    level: str = Field(max_length=50)
    rank: int
    changed_at: datetime = Field(sa_type=UTCDateTime())
