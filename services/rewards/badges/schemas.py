"""Badges over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from services.rewards.program.schemas import EVENT_TYPE_PATTERN


class CountCriteria(BaseModel):
    """Awarded after `count` activities of `event_type`."""

    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(min_length=1, max_length=100, pattern=EVENT_TYPE_PATTERN)
    count: int = Field(gt=0, le=10_000_000)


class StreakCriteria(BaseModel):
    """Awarded when the check-in streak reaches `streak_days`."""

    model_config = ConfigDict(extra="forbid")

    streak_days: int = Field(gt=0, le=100_000)


class LevelCriteria(BaseModel):
    """Awarded when the member reaches `level` (by name) or a higher one."""

    model_config = ConfigDict(extra="forbid")

    level: str = Field(min_length=1, max_length=50)


Criteria = CountCriteria | StreakCriteria | LevelCriteria


class BadgeCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64, pattern=r"^[a-z0-9][a-z0-9_-]*$", examples=["early_bird"])
    name: str = Field(min_length=1, max_length=100)
    description: str = Field(default="", max_length=1000)
    criteria: Criteria | None = Field(default=None, description="None: awarded only by an operator")


class BadgeRead(BaseModel):
    code: str
    name: str
    description: str
    criteria: dict[str, Any] | None
    created_at: datetime


class BadgePage(BaseModel):
    items: list[BadgeRead]
    next_cursor: str | None = None


class BadgeAwardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(min_length=1, max_length=64)


class MemberBadgeRead(BaseModel):
    member_id: uuid.UUID
    code: str
    name: str
    description: str
    awarded_at: datetime
    manual: bool


class MemberBadgePage(BaseModel):
    items: list[MemberBadgeRead]
    next_cursor: str | None = None
