"""Poll votes: one per member and poll (the member's id is dropped on erasure, the vote stays)."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.content.db import ContentModel


class PollVote(ContentModel, table=True):
    __tablename__ = "poll_votes"
    __table_args__ = (
        sa.UniqueConstraint("post_id", "member_id"),
        sa.Index("ix_poll_votes_member_id", "member_id"),
    )

    id: uuid.UUID = Field(primary_key=True)
    post_id: uuid.UUID
    member_id: uuid.UUID | None = None
    option: str = Field(max_length=200)
    voted_at: datetime = Field(sa_type=UTCDateTime())
