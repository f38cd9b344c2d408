"""The memberships HTTP contract."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict


class MembershipCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    member_id: uuid.UUID


class MembershipRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    community_id: uuid.UUID
    member_id: uuid.UUID
    joined_at: datetime
    joined_date: date
