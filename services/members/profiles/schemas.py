"""The members HTTP contract: profiles as partners and operators see them."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.common.db import utcnow
from services.common.pagination import Page
from services.members.validation import (
    AttributeKey,
    Attributes,
    AttributeValue,
    DisplayName,
    Email,
    ExternalId,
    Phone,
    Tags,
)


class ConsentIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    marketing: bool = Field(description="May we send marketing messages?")


class ConsentRead(BaseModel):
    marketing: bool
    updated_at: datetime | None = Field(default=None, description="When the consent was last given or withdrawn")


def _not_in_future(value: datetime | None) -> datetime | None:
    if value is not None and value > utcnow():
        raise ValueError("must not be in the future")
    return value


class MemberCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId
    display_name: DisplayName
    email: Email | None = None
    phone: Phone | None = None
    tags: Tags = Field(default_factory=list, description="Up to 50 tags")
    attributes: Attributes = Field(default_factory=dict, description="Up to 50 scalar values, keys like `plan`")
    consent: ConsentIn | None = None
    joined_at: AwareDatetime | None = Field(default=None, description="When they joined (default: now), for imports")

    _joined_check = field_validator("joined_at")(_not_in_future)


class MemberUpsert(BaseModel):
    """`PUT /v1/members/by-external-id/{external_id}`: fields sent are set, others are kept
    (on create, `display_name` is required). `tags` and `attributes` replace the old ones."""

    model_config = ConfigDict(extra="forbid")

    display_name: DisplayName | None = None
    email: Email | None = None
    phone: Phone | None = None
    tags: Tags | None = None
    attributes: Attributes | None = None
    consent: ConsentIn | None = None
    joined_at: AwareDatetime | None = None

    _joined_check = field_validator("joined_at")(_not_in_future)

    @field_validator("display_name", "tags", "attributes", "consent", "joined_at", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class MemberUpdate(BaseModel):
    """Only the fields sent change. `email`/`phone` null removes them; `tags` replaces the
    list; `attributes` merges (a key set to null is removed)."""

    model_config = ConfigDict(extra="forbid")

    external_id: ExternalId | None = None
    display_name: DisplayName | None = None
    email: Email | None = None
    phone: Phone | None = None
    tags: Tags | None = None
    attributes: dict[AttributeKey, AttributeValue | None] | None = Field(default=None, max_length=100)
    consent: ConsentIn | None = None

    @field_validator("external_id", "display_name", "tags", "attributes", "consent", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


# Fields a member may change on their own profile; the rest belong to operators/partners.
SELF_EDITABLE = frozenset({"display_name", "email", "phone", "consent"})


class MemberRead(BaseModel):
    id: uuid.UUID
    external_id: str | None
    display_name: str
    email: str | None
    phone: str | None
    tags: list[str]
    attributes: dict[str, Any]
    consent: ConsentRead
    joined_at: datetime
    last_active_at: datetime | None
    created_at: datetime
    updated_at: datetime


MemberPage = Page[MemberRead]
