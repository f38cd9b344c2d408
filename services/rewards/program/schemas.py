"""The earning program over HTTP: rules and levels (each PUT replaces the whole list)."""

from __future__ import annotations

import uuid

from pydantic import BaseModel, ConfigDict, Field

EVENT_TYPE_PATTERN = r"^[a-z][a-z0-9_.:-]*$"


class RuleCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    event_type: str = Field(min_length=1, max_length=100, pattern=EVENT_TYPE_PATTERN, examples=["check_in"])
    points: int = Field(gt=0, le=1_000_000)
    daily_cap: int | None = Field(
        default=None, gt=0, le=100_000_000, description="Most points per member and local day"
    )
    community_id: uuid.UUID | None = Field(default=None, description="Only activity in this community; all if absent")
    expires_in_days: int | None = Field(default=None, gt=0, le=3650, description="Points expire this many days after")


class RuleRead(BaseModel):
    id: uuid.UUID
    event_type: str
    points: int
    daily_cap: int | None
    community_id: uuid.UUID | None
    expires_in_days: int | None


class LevelCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=50)
    min_lifetime_points: int = Field(ge=0, le=2_000_000_000)


class LevelRead(BaseModel):
    name: str
    min_lifetime_points: int
