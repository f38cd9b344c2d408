"""Rules and the sanction ladder over HTTP."""

from __future__ import annotations

import uuid
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.common.contracts.moderation import SanctionAction

Severity = Literal["minor", "major", "severe"]
RULE_CODE = r"^[a-z0-9][a-z0-9_.-]{0,63}$"
MAX_MINUTES = 366 * 24 * 60


class RuleItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    code: str = Field(pattern=RULE_CODE, description="Stable code, e.g. `no-spam`")
    title: str = Field(min_length=1, max_length=200)
    description: str = Field(default="", max_length=5000)
    severity: Severity = Field(default="minor", description="An upheld report of a `severe` rule bans at once")


class RulesUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    items: list[RuleItem] = Field(max_length=100)

    @model_validator(mode="after")
    def _unique_codes(self) -> Self:
        codes = [item.code for item in self.items]
        if len(codes) != len(set(codes)):
            raise ValueError("rule codes must be unique")
        return self


class RulesRead(BaseModel):
    community_id: uuid.UUID
    version: int = Field(description="Bumped by every change; 0 before the first")
    items: list[RuleItem]


class LadderStep(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strikes: int = Field(ge=1, le=100, description="Active strikes that reach this step")
    action: SanctionAction
    minutes: int | None = Field(
        default=None, ge=1, le=MAX_MINUTES, description="Mute length (required); a ban with minutes is temporary"
    )

    @model_validator(mode="after")
    def _minutes(self) -> Self:
        if self.action == "mute" and self.minutes is None:
            raise ValueError("a mute step needs minutes")
        if self.action == "warn" and self.minutes is not None:
            raise ValueError("a warning has no minutes")
        return self


class SanctionLadderBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    strike_ttl_days: int = Field(default=90, ge=1, le=3650, description="Strikes stop counting after this many days")
    steps: list[LadderStep] = Field(min_length=1, max_length=20)

    @model_validator(mode="after")
    def _ascending(self) -> Self:
        strikes = [step.strikes for step in self.steps]
        if strikes != sorted(set(strikes)):
            raise ValueError("steps go by strictly ascending strikes")
        return self


DEFAULT_LADDER = SanctionLadderBody(
    strike_ttl_days=90,
    steps=[
        LadderStep(strikes=1, action="warn"),
        LadderStep(strikes=2, action="mute", minutes=24 * 60),
        LadderStep(strikes=3, action="ban"),
    ],
)
