"""Reports over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

from services.feedback.moderation.rules.schemas import RULE_CODE

ReportStatus = Literal["open", "dismissed", "upheld"]


class Evidence(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: str | None = Field(
        default=None, min_length=1, max_length=200, description="The chat message: its reports form one queue item"
    )
    text: str | None = Field(default=None, min_length=1, max_length=5000)
    url: str | None = Field(default=None, min_length=1, max_length=2000, pattern=r"^https?://")

    @model_validator(mode="after")
    def _something(self) -> Self:
        if self.message_id is None and self.text is None and self.url is None:
            raise ValueError("evidence needs a message_id, a text or a url")
        return self


class ReportCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    community_id: uuid.UUID
    reported_member_id: uuid.UUID
    rule_code: str | None = Field(default=None, pattern=RULE_CODE)
    evidence: Evidence
    note: str | None = Field(default=None, max_length=2000)
    reporter_member_id: uuid.UUID | None = Field(
        default=None, description="Partners (`moderation:write`) report on behalf of this member"
    )


class FilingRead(BaseModel):
    reporter_member_id: uuid.UUID | None = Field(description="Null when staff reported")
    evidence: Evidence
    note: str | None
    created_at: datetime


class ReportRead(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    reported_member_id: uuid.UUID
    message_id: str | None
    rule_code: str | None
    status: ReportStatus
    reporter_count: int | None = Field(description="How many reporters (moderators only)")
    filings: list[FilingRead] = Field(description="Moderators see every filing; a reporter sees their own")
    created_at: datetime
    resolved_at: datetime | None
    decision: Literal["dismiss", "uphold"] | None
    resolution_note: str | None = Field(default=None, description="Moderators only")
    sanction_id: uuid.UUID | None = Field(default=None, description="The sanction upholding applied (moderators only)")


class ReportPage(BaseModel):
    items: list[ReportRead]
    next_cursor: str | None = None


class ReportResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    decision: Literal["dismiss", "uphold"]
    rule_code: str | None = Field(
        default=None, pattern=RULE_CODE, description="The rule broken (default: the report's)"
    )
    note: str | None = Field(default=None, max_length=2000)
