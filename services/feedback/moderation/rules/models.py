"""A community's rules (versioned) and its sanction ladder."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from sqlalchemy.dialects import postgresql
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.feedback.db import FeedbackModel


class CommunityRules(FeedbackModel, table=True):
    """The rules of one community; every change bumps `version` (absent: version 0, no rules)."""

    __tablename__ = "community_rules"

    community_id: uuid.UUID = Field(primary_key=True)
    version: int
    items: list[dict[str, Any]] = Field(sa_type=postgresql.JSONB())
    updated_by: str = Field(max_length=200)
    updated_at: datetime = Field(sa_type=UTCDateTime())


class SanctionLadder(FeedbackModel, table=True):
    """How strikes turn into sanctions in one community (absent: the default ladder)."""

    __tablename__ = "sanction_ladders"

    community_id: uuid.UUID = Field(primary_key=True)
    strike_ttl_days: int
    steps: list[dict[str, Any]] = Field(sa_type=postgresql.JSONB())
    updated_at: datetime = Field(sa_type=UTCDateTime())
