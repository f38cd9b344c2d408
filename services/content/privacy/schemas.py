"""The member's content data, for the export the gateway composes."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel


class VoteExport(BaseModel):
    post_id: uuid.UUID
    option: str
    voted_at: datetime


class PermitExport(BaseModel):
    id: uuid.UUID
    community_id: uuid.UUID
    kind: str
    requested_by: str
    granted_at: datetime


class MembershipExport(BaseModel):
    community_id: uuid.UUID
    joined_at: datetime


class MemberExport(BaseModel):
    member_id: uuid.UUID
    marketing_consent: bool | None
    communities: list[MembershipExport]
    votes: list[VoteExport]
    contact_permits: list[PermitExport]
