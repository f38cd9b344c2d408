"""Sanctions, strikes and a member's standing over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.contracts.moderation import SanctionAction
from services.feedback.moderation.rules.schemas import MAX_MINUTES, RULE_CODE

SanctionStatus = Literal["issued", "active", "expired", "lifted"]
EndReason = Literal["expired", "lifted", "appeal"]


class SanctionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID
    community_id: uuid.UUID
    action: SanctionAction
    minutes: int | None = Field(
        default=None, ge=1, le=MAX_MINUTES, description="Required for a mute; a ban without is permanent"
    )
    rule_code: str = Field(pattern=RULE_CODE)
    reason: str = Field(min_length=1, max_length=2000)

    @model_validator(mode="after")
    def _minutes(self) -> Self:
        if self.action == "mute" and self.minutes is None:
            raise ValueError("a mute needs minutes")
        if self.action == "warn" and self.minutes is not None:
            raise ValueError("a warning has no minutes")
        return self


class SanctionLift(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str | None = Field(default=None, max_length=2000)


class SanctionRead(BaseModel):
    id: uuid.UUID
    member_id: uuid.UUID
    community_id: uuid.UUID
    action: SanctionAction
    rule_code: str
    reason: str | None
    report_id: uuid.UUID | None
    status: SanctionStatus
    created_at: datetime
    until: datetime | None = Field(description="When a mute or temporary ban ends by itself")
    ended_at: datetime | None
    end_reason: EndReason | None


class ActiveSanction(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    action: SanctionAction
    rule_code: str
    until: datetime | None


class StrikeRead(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    rule_code: str
    report_id: uuid.UUID | None
    created_at: datetime
    expires_at: datetime
    removed_at: datetime | None
    counting: bool = Field(description="Not expired and not removed by an appeal")


class StandingRead(BaseModel):
    """A member's standing: strikes that count now, sanctions in force, and the history."""

    member_id: uuid.UUID
    community_id: uuid.UUID | None
    strikes: int = Field(description="Strikes that count now")
    active: list[ActiveSanction]
    history: list[SanctionRead] = Field(description="Every sanction, newest first")
    strike_history: list[StrikeRead] = Field(description="Every strike, newest first")
