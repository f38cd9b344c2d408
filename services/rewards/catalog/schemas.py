"""The catalog and redemptions over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

RedemptionStatus = Literal["pending", "fulfilled", "cancelled"]


class RewardCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=2000)
    cost: int = Field(gt=0, le=1_000_000_000, description="Points per redemption")
    stock: int | None = Field(ge=0, le=1_000_000_000, description="Units left; null for unlimited")
    per_member_limit: int | None = Field(default=None, gt=0, le=1_000_000, description="Redemptions per member")
    active_from: AwareDatetime | None = None
    active_to: AwareDatetime | None = None

    @model_validator(mode="after")
    def _window(self) -> RewardCreate:
        if self.active_from and self.active_to and self.active_to <= self.active_from:
            raise ValueError("active_to must be after active_from")
        return self


class RewardUpdate(BaseModel):
    """Fields to change; `stock` sets the units left (e.g. after a restock)."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    description: str | None = Field(default=None, max_length=2000)
    cost: int | None = Field(default=None, gt=0, le=1_000_000_000)
    stock: int | None = Field(default=None, ge=0, le=1_000_000_000)
    per_member_limit: int | None = Field(default=None, gt=0, le=1_000_000)
    active_from: AwareDatetime | None = None
    active_to: AwareDatetime | None = None


class RewardRead(BaseModel):
    id: uuid.UUID
    name: str
    description: str
    cost: int
    stock: int | None
    per_member_limit: int | None
    active_from: datetime | None
    active_to: datetime | None
    active: bool = Field(description="Redeemable now (inside its window)")
    created_at: datetime
    updated_at: datetime


class RewardPage(BaseModel):
    items: list[RewardRead]
    next_cursor: str | None = None


class RedemptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reward_id: uuid.UUID
    member_id: uuid.UUID | None = Field(default=None, description="Staff only: redeem on a member's behalf")


class RedemptionRead(BaseModel):
    id: uuid.UUID
    member_id: uuid.UUID
    reward_id: uuid.UUID
    cost: int
    status: RedemptionStatus
    entry_id: uuid.UUID = Field(description="The ledger entry that took the points")
    created_at: datetime
    fulfilled_at: datetime | None
    cancelled_at: datetime | None


class RedemptionPage(BaseModel):
    items: list[RedemptionRead]
    next_cursor: str | None = None
