"""Contracts of the members service: member lifecycle and community membership.

Payloads carry ids and non-personal fields only, never email or phone; after an erasure
the member's past events keep their ids but lose `external_id` and `tags`.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import ConfigDict, Field

from services.common.contracts.base import ContractPart, EventModel, UtcDatetime

MEMBER_ID = "2b0c8a9e-5f1d-4c3e-9a77-1f4d2e6b8c01"
COMMUNITY_ID = "7d3e1f20-8a4b-4c5d-9e6f-0a1b2c3d4e5f"

# The member fields whose change `member.updated` names.
MemberField = Literal["email", "phone", "consent", "external_id", "display_name", "attributes", "joined_at", "tags"]


class MarketingConsent(ContractPart):
    marketing: bool = Field(description="The member agreed to receive promotions")


class MemberCreated(EventModel):
    """A member was created."""

    event_type = "member.created"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": MEMBER_ID,
                    "external_id": "wx-9f2c41",
                    "tags": ["vip", "early-adopter"],
                    "joined_at": "2026-11-21T08:00:00Z",
                    "consent": {"marketing": True},
                }
            ]
        }
    )

    member_id: uuid.UUID
    external_id: str | None = Field(description="The partner's id for the member; null once the member is erased")
    tags: list[str]
    joined_at: UtcDatetime
    consent: MarketingConsent


class MemberUpdated(EventModel):
    """A member's profile changed."""

    event_type = "member.updated"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": MEMBER_ID,
                    "external_id": "wx-9f2c41",
                    "changed": ["display_name", "tags"],
                    "consent": {"marketing": True},
                }
            ]
        }
    )

    member_id: uuid.UUID
    external_id: str | None = Field(description="The partner's id for the member; null once the member is erased")
    changed: list[MemberField] = Field(description="The fields that changed (their values are not sent)")
    consent: MarketingConsent | None = Field(
        default=None,
        description="The member's marketing consent after the change (content keeps a copy for the contact "
        "budget); null only in events written before this field existed",
    )


class MemberJoinedCommunity(EventModel):
    """A member joined a community."""

    event_type = "member.joined_community"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"member_id": MEMBER_ID, "community_id": COMMUNITY_ID, "joined_at": "2026-11-21T08:00:00Z"}]
        }
    )

    member_id: uuid.UUID
    community_id: uuid.UUID
    joined_at: UtcDatetime


class MemberLeftCommunity(EventModel):
    """A member left a community."""

    event_type = "member.left_community"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"member_id": MEMBER_ID, "community_id": COMMUNITY_ID, "left_at": "2026-11-28T19:30:00Z"}]
        }
    )

    member_id: uuid.UUID
    community_id: uuid.UUID
    left_at: UtcDatetime


class MemberErased(EventModel):
    """A member's personal data was erased; every service removes what it holds."""

    event_type = "member.erased"
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"member_id": MEMBER_ID, "erased_at": "2026-12-01T10:15:00Z"}]}
    )

    member_id: uuid.UUID
    erased_at: UtcDatetime
