"""The HTTP contract of posts."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Literal, Self

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from services.common.contracts.content import PostKind
from services.content.compliance.schemas import ComplianceFlag, ComplianceOverride

PostStatus = Literal["draft", "in_review", "approved", "rejected", "scheduled", "published"]
Title = Field(min_length=1, max_length=200)
Body = Field(min_length=1, max_length=20_000)
Options = Field(default=None, min_length=2, max_length=20, description="A poll's choices (2-20, distinct)")


def _check_options(kind: str | None, options: list[str] | None) -> None:
    if kind == "poll" and options is None:
        raise ValueError("a poll needs `options`")
    if kind is not None and kind != "poll" and options is not None:
        raise ValueError("only a poll has `options`")
    if options is not None:
        if any(not o.strip() or len(o) > 200 for o in options):
            raise ValueError("an option is 1-200 characters")
        if len(set(options)) != len(options):
            raise ValueError("options must be distinct")


class PostCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    community_id: uuid.UUID
    title: str = Title
    body: str = Body
    kind: PostKind
    options: list[str] | None = Options

    @model_validator(mode="after")
    def _options(self) -> Self:
        _check_options(self.kind, self.options)
        return self


class PostUpdate(BaseModel):
    """Fields to change (only while the post is a draft or rejected)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = Field(default=None, min_length=1, max_length=200)
    body: str | None = Field(default=None, min_length=1, max_length=20_000)
    kind: PostKind | None = None
    options: list[str] | None = Options


class PostRead(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    title: str
    body: str
    kind: PostKind
    status: PostStatus
    options: list[str] | None
    publish_at: datetime | None
    published_at: datetime | None
    author_id: uuid.UUID
    reviewer_id: uuid.UUID | None
    rejection_reason: str | None
    compliance_flags: list[ComplianceFlag] | None = Field(
        description="What the compliance check found at submit (or its last run); null: not checked since the last edit"
    )
    compliance_checked_at: datetime | None
    compliance_override: ComplianceOverride | None = Field(
        description="Set when a reviewer approved despite the flags (`override: true`)"
    )
    created_at: datetime
    updated_at: datetime


class PostPage(BaseModel):
    items: list[PostRead]
    next_cursor: str | None = None


class ScheduleBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    publish_at: AwareDatetime = Field(description="When to publish (RFC 3339, in the future)")


class ApproveBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    override: bool = Field(
        default=False,
        description="Approve despite compliance flags (required for a flagged promotion); recorded on the post",
    )


class RejectBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)
