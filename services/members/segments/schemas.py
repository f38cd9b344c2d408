"""The segments HTTP contract: a rule over tags, attributes, communities, join date, inactivity."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StringConstraints, field_validator, model_validator

from services.common.pagination import Page
from services.members.validation import AttributeKey, AttributeValue, Tag

Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class TagRule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    any: list[Tag] = Field(default_factory=list, max_length=50, description="Has at least one of these tags")
    all: list[Tag] = Field(default_factory=list, max_length=50, description="Has every one of these tags")


class SegmentRule(BaseModel):
    """Every condition given must hold (AND); an empty rule matches every live member."""

    model_config = ConfigDict(extra="forbid")

    tags: TagRule | None = None
    attributes: dict[AttributeKey, AttributeValue] | None = Field(
        default=None, max_length=20, description="Attribute values that must be equal (type included)"
    )
    community_ids: list[uuid.UUID] | None = Field(
        default=None, min_length=1, max_length=100, description="Currently in at least one of these communities"
    )
    joined_after: AwareDatetime | None = Field(default=None, description="Joined at or after this time")
    joined_before: AwareDatetime | None = Field(default=None, description="Joined before this time")
    inactive_days: int | None = Field(default=None, ge=1, le=3650, description="No activity for this many days")

    @model_validator(mode="after")
    def _ordered_dates(self) -> SegmentRule:
        if self.joined_after and self.joined_before and self.joined_after >= self.joined_before:
            raise ValueError("joined_after must be before joined_before")
        return self


class SegmentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    rule: SegmentRule


class SegmentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    rule: SegmentRule | None = None

    @field_validator("name", "description", "rule", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class SegmentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    rule: SegmentRule
    created_at: datetime
    updated_at: datetime


SegmentPage = Page[SegmentRead]
