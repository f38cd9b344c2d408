"""Privacy answers: what the members service holds about a person, and id resolution."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Any

from pydantic import BaseModel, Field

from services.members.profiles.schemas import MemberRead


class MembershipExport(BaseModel):
    community_id: uuid.UUID
    joined_at: datetime
    left_at: datetime | None


class ActivityExport(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    type: str
    occurred_at: datetime
    local_date: date
    properties: dict[str, Any] | None


class MemberExport(BaseModel):
    """Everything the members service holds about one person (the gateway adds the rest)."""

    service: str = "members"
    exported_at: datetime
    profile: MemberRead
    memberships: list[MembershipExport]
    activity: list[ActivityExport] = Field(description="Every recorded activity, oldest first")


class MemberReference(BaseModel):
    id: uuid.UUID
    external_id: str | None
