"""The suggestion board over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from services.common.contracts.feedback import SuggestionStatus


class SuggestionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    community_id: uuid.UUID
    title: str = Field(min_length=1, max_length=200)
    body: str = Field(default="", max_length=20_000)


class SuggestionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: SuggestionStatus | None = None
    response: str | None = Field(default=None, max_length=20_000, description="The public answer to the community")


class SuggestionRead(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    member_id: uuid.UUID
    title: str
    body: str
    status: SuggestionStatus
    response: str | None
    votes: int = Field(description="How many members voted")
    score: int = Field(description="Votes weighed by each voter's level (lowest level 1, +1 per level above)")
    voted: bool | None = Field(default=None, description="Whether the calling member voted (members only)")
    created_at: datetime
    updated_at: datetime
    completed_at: datetime | None


class SuggestionPage(BaseModel):
    items: list[SuggestionRead]
    next_cursor: str | None = None
