"""The communities HTTP contract."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, field_validator

from services.common.pagination import Page
from services.members.communities.models import DEFAULT_TIMEZONE


def _iana_zone(value: str) -> str:
    # ZoneInfo also accepts file-system paths and odd aliases; only IANA names are allowed.
    if value not in _ZONES:
        raise ValueError("must be an IANA time zone name, e.g. Asia/Shanghai")
    try:
        ZoneInfo(value)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError("must be an IANA time zone name, e.g. Asia/Shanghai") from exc
    return value


_ZONES = frozenset(available_timezones())

TimeZoneName = Annotated[
    str,
    StringConstraints(min_length=1, max_length=64),
    AfterValidator(_iana_zone),
    Field(description="IANA time zone the community's days are counted in", examples=["Asia/Shanghai"]),
]
Name = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Description = Annotated[str, StringConstraints(strip_whitespace=True, max_length=2000)]


class CommunityCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Name
    description: Description = ""
    timezone: TimeZoneName = DEFAULT_TIMEZONE


class CommunityUpdate(BaseModel):
    """Only the fields sent are changed."""

    model_config = ConfigDict(extra="forbid")

    name: Name | None = None
    description: Description | None = None
    timezone: TimeZoneName | None = None

    @field_validator("name", "description", "timezone", mode="before")
    @classmethod
    def _not_null(cls, value: Any) -> Any:
        if value is None:
            raise ValueError("may be left out, but not null")
        return value


class CommunityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str
    timezone: str
    created_at: datetime
    updated_at: datetime


CommunityPage = Page[CommunityRead]
