"""Points over HTTP: a member's standing, the ledger, manual adjustments."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator


class LevelStanding(BaseModel):
    name: str | None = Field(description="The level the member's lifetime points reach")
    next_name: str | None = Field(description="The next level, if any")
    next_at: int | None = Field(description="Lifetime points the next level needs")


class ExpiringPoints(BaseModel):
    points: int
    expires_at: datetime


class PointsRead(BaseModel):
    member_id: uuid.UUID
    balance: int
    lifetime: int = Field(description="Points ever earned (spending and expiry never lower it)")
    level: LevelStanding
    streak_days: int = Field(description="Consecutive local days with a check-in, up to today or yesterday")
    expiring: list[ExpiringPoints] = Field(description="Points that will expire, soonest first")


class LedgerEntryRead(BaseModel):
    id: uuid.UUID
    delta: int
    balance_after: int
    reason: str = Field(
        description=(
            "earned:<rule> (earned:check_in, earned:suggestion_completed, ...), skipped:<rule> (0 points: "
            "see skipped_because), adjustment, redemption, refund or expired"
        )
    )
    source_event_id: uuid.UUID | None
    redemption_id: uuid.UUID | None = None
    adjustment_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    skipped_because: Literal["muted", "banned"] | None = Field(
        default=None, description="Why a rule earned nothing: the member was muted or banned in the community"
    )
    created_at: datetime


class LedgerPage(BaseModel):
    items: list[LedgerEntryRead]
    next_cursor: str | None = None


class AdjustmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID
    delta: int = Field(ge=-1_000_000_000, le=1_000_000_000, description="Points to add (>0) or take (<0)")
    reason: str = Field(min_length=1, max_length=500, description="Why, for the audit trail")

    @field_validator("delta")
    @classmethod
    def _not_zero(cls, value: int) -> int:
        if value == 0:
            raise ValueError("delta must not be zero")
        return value


class AdjustmentRead(BaseModel):
    id: uuid.UUID
    member_id: uuid.UUID
    delta: int
    reason: str
    balance_after: int
    entry_id: uuid.UUID
    created_at: datetime
