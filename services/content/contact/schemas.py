"""The HTTP contract of the contact budget."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.content.policy.schemas import QuietHoursBody

ContactKind = Literal["promotion", "announcement", "survey", "reminder", "reply"]


class ContactPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    weekly_max: int = Field(ge=0, le=1000, description="Touches per member in any rolling 7 days (replies excluded)")
    weekly_max_promotions: int = Field(ge=0, le=1000, description="Of which promotions")
    quiet_hours: QuietHoursBody | None = Field(default=None, description="null: the publishing policy's")


class ContactPolicyRead(BaseModel):
    community_id: uuid.UUID
    weekly_max: int
    weekly_max_promotions: int
    quiet_hours: QuietHoursBody | None = Field(description="In force (the publishing policy's unless set here)")
    quiet_hours_inherited: bool
    is_default: bool


class PermitCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID
    community_id: uuid.UUID
    kind: ContactKind


class Remaining(BaseModel):
    week: int
    promotions: int


class PermitRead(BaseModel):
    granted: bool
    permit_id: uuid.UUID | None = Field(description="null for a reply (never recorded: it never counts)")
    remaining: Remaining


class ContactBudgetRead(BaseModel):
    member_id: uuid.UUID
    week_used: int
    weekly_max: int
    promotions_used: int
    weekly_max_promotions: int
    next_allowed_at: datetime | None = Field(description="When a touch is next allowed; null: now")
