"""The memberships HTTP contract."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, field_validator

from services.common.db import utcnow


class MembershipCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID
    joined_at: AwareDatetime | None = Field(
        default=None, description="When they joined (default: now); for imports, not for members themselves"
    )

    @field_validator("joined_at")
    @classmethod
    def _not_in_future(cls, value: datetime | None) -> datetime | None:
        if value is not None and value > utcnow():
            raise ValueError("must not be in the future")
        return value


class MembershipRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    community_id: uuid.UUID
    member_id: uuid.UUID
    joined_at: datetime
    joined_date: date
