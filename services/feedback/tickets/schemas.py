"""Tickets, comments, CSAT and support settings over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.contracts.feedback import TicketCategory, TicketPriority, TicketStatus

Tag = str


def _clean_tags(tags: list[str]) -> list[str]:
    cleaned: list[str] = []
    for tag in tags:
        tag = tag.strip().lower()
        if not tag or len(tag) > 64:
            raise ValueError("tags are 1 to 64 characters")
        if tag not in cleaned:
            cleaned.append(tag)
    return cleaned


class TicketCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    subject: str = Field(min_length=1, max_length=200)
    body: str = Field(min_length=1, max_length=20_000)
    category: TicketCategory = "question"
    priority: TicketPriority = "normal"
    community_id: uuid.UUID | None = None
    tags: list[str] = Field(default_factory=list, max_length=20)
    member_id: uuid.UUID | None = Field(default=None, description="Required when an agent files for a member")
    assignee_id: uuid.UUID | None = Field(default=None, description="Agents only")
    sanction_id: uuid.UUID | None = Field(default=None, description="An appeal names the sanction it contests")

    _tags = field_validator("tags")(_clean_tags)


class TicketUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    status: TicketStatus | None = None
    priority: TicketPriority | None = None
    assignee_id: uuid.UUID | None = None
    tags: list[str] | None = Field(default=None, max_length=20)

    @field_validator("tags")
    @classmethod
    def _tags(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _clean_tags(value)


class SlaRead(BaseModel):
    first_response_due_at: datetime
    resolution_due_at: datetime
    breached: bool


class RatingRead(BaseModel):
    rating: int
    comment: str | None
    created_at: datetime


class TicketRead(BaseModel):
    id: uuid.UUID
    member_id: uuid.UUID
    community_id: uuid.UUID | None
    subject: str
    body: str
    category: TicketCategory
    priority: TicketPriority
    status: TicketStatus
    tags: list[str]
    assignee_id: uuid.UUID | None
    created_at: datetime
    updated_at: datetime
    first_response_at: datetime | None
    resolved_at: datetime | None
    closed_at: datetime | None
    sla: SlaRead
    satisfaction: RatingRead | None = None
    sanction_id: uuid.UUID | None = None


class TicketResolve(BaseModel):
    model_config = ConfigDict(extra="forbid")

    appeal: Literal["grant", "deny"] | None = Field(
        default=None, description="An appeal's decision: `grant` lifts the sanction and removes its strike"
    )


class TicketPage(BaseModel):
    items: list[TicketRead]
    next_cursor: str | None = None


class CommentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    body: str = Field(min_length=1, max_length=20_000)
    internal: bool = Field(default=False, description="An internal note, for agents only")


class CommentRead(BaseModel):
    id: uuid.UUID
    ticket_id: uuid.UUID
    author_kind: Literal["member", "agent"]
    author_id: str
    internal: bool
    body: str
    created_at: datetime


class CommentPage(BaseModel):
    items: list[CommentRead]
    next_cursor: str | None = None


class RatingCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: int = Field(ge=1, le=5)
    comment: str | None = Field(default=None, max_length=5000)


class SupportSettingsBody(BaseModel):
    """Support-wide settings: how long an owner may reopen, and how new tickets are assigned."""

    model_config = ConfigDict(extra="forbid")

    reopen_window_days: int = Field(default=7, ge=0, le=365)
    assignment: Literal["manual", "round_robin"] = Field(
        default="manual", description="round_robin: new tickets go to the enabled agent assigned least recently"
    )


class AgentRead(BaseModel):
    id: uuid.UUID
    disabled: bool
    first_seen_at: datetime
    last_assigned_at: datetime | None


class AgentPage(BaseModel):
    items: list[AgentRead]


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    disabled: bool
