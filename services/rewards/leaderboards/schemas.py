"""Leaderboards over HTTP."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Literal

from pydantic import BaseModel, Field


class LeaderboardEntry(BaseModel):
    rank: int
    member_id: uuid.UUID
    points: int


class LeaderboardMe(BaseModel):
    rank: int | None = Field(description="None until the member earns points in this period")
    points: int


class LeaderboardRead(BaseModel):
    community_id: uuid.UUID
    period: Literal["week", "month", "all"]
    period_start: date = Field(description="Local date the period began (1970-01-01 for all time)")
    items: list[LeaderboardEntry]
    me: LeaderboardMe | None = Field(default=None, description="The calling member's own place")
