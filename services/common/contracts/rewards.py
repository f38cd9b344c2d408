"""Contracts of the rewards service: points, levels, badges and redemptions.

Version history (`schema_version`):

- `rewards.level_changed` v2: `from_level` -> `previous_level`, `to_level` -> `level`.
- `rewards.redemption_created` and `rewards.redemption_cancelled` v2: `id` -> `redemption_id`.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import ConfigDict, Field

from services.common.contracts.base import EventModel, UtcDatetime
from services.common.contracts.members import COMMUNITY_ID, MEMBER_ID

ENTRY_ID = "5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b"
REWARD_ID = "3a4b5c6d-7e8f-4a9b-8c0d-1e2f3a4b5c6d"
REDEMPTION_ID = "9f8e7d6c-5b4a-4c3d-8e2f-1a0b9c8d7e6f"


class PointsAwarded(EventModel):
    """Points were awarded to a member (earned by a rule or added by an operator)."""

    event_type = "rewards.points_awarded"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": MEMBER_ID,
                    "entry_id": ENTRY_ID,
                    "points": 5,
                    "reason": "earned:check_in",
                    "balance": 120,
                    "lifetime": 340,
                    "source_event_id": "0d1e2f3a-4b5c-4d6e-8f7a-8b9c0d1e2f3a",
                    "community_id": COMMUNITY_ID,
                    "awarded_at": "2026-11-21T01:30:02Z",
                }
            ]
        }
    )

    member_id: uuid.UUID
    entry_id: uuid.UUID = Field(description="The ledger entry")
    points: int = Field(gt=0)
    reason: str = Field(description="`earned:<rule event type>` or `adjustment`")
    balance: int = Field(ge=0, description="The balance after the award")
    lifetime: int = Field(ge=0, description="Lifetime earned points after the award (levels follow it)")
    source_event_id: uuid.UUID | None = Field(description="The `activity.recorded` event that earned it")
    community_id: uuid.UUID | None = Field(description="The community the activity happened in")
    awarded_at: UtcDatetime


class PointsDeducted(EventModel):
    """An operator took points from a member."""

    event_type = "rewards.points_deducted"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": MEMBER_ID,
                    "entry_id": ENTRY_ID,
                    "points": 30,
                    "reason": "adjustment",
                    "balance": 90,
                    "deducted_at": "2026-11-22T09:00:00Z",
                }
            ]
        }
    )

    member_id: uuid.UUID
    entry_id: uuid.UUID = Field(description="The ledger entry")
    points: int = Field(gt=0, description="How many points were taken")
    reason: Literal["adjustment"]
    balance: int = Field(ge=0, description="The balance after the deduction")
    deducted_at: UtcDatetime


class PointsExpired(EventModel):
    """A member's points expired (lots past their rule's `expires_in_days`)."""

    event_type = "rewards.points_expired"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [{"member_id": MEMBER_ID, "points": 15, "balance": 75, "expired_at": "2026-12-21T16:00:00Z"}]
        }
    )

    member_id: uuid.UUID
    points: int = Field(gt=0, description="How many points expired in this run")
    balance: int = Field(ge=0, description="The balance after the expiry")
    expired_at: UtcDatetime


class LevelChanged(EventModel):
    """A member reached a new level (levels follow lifetime points, so only upwards)."""

    event_type = "rewards.level_changed"
    schema_version = 2  # v1 sent `from_level` / `to_level`
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": MEMBER_ID,
                    "level": "Regular",
                    "previous_level": "Newcomer",
                    "lifetime": 500,
                    "rank": 1,
                    "changed_at": "2026-11-21T01:30:02Z",
                }
            ]
        }
    )

    member_id: uuid.UUID
    level: str = Field(description="The level reached")
    previous_level: str | None = Field(description="The level before, or null for a first level")
    lifetime: int = Field(ge=0, description="Lifetime earned points that reached it")
    rank: int | None = Field(
        default=None, ge=0, description="The level's place on the ladder, 0 for the lowest (weighs suggestion votes)"
    )
    changed_at: UtcDatetime


class BadgeAwarded(EventModel):
    """A member earned a badge (by its criteria) or was given one by an operator."""

    event_type = "rewards.badge_awarded"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "member_id": MEMBER_ID,
                    "badge_code": "streak-7",
                    "badge_name": "Seven days in a row",
                    "awarded_at": "2026-11-27T01:30:02Z",
                    "manual": False,
                }
            ]
        }
    )

    member_id: uuid.UUID
    badge_code: str
    badge_name: str
    awarded_at: UtcDatetime
    manual: bool = Field(description="Given by an operator rather than earned")


class _Redemption(EventModel):
    redemption_id: uuid.UUID
    member_id: uuid.UUID
    reward_id: uuid.UUID
    cost: int = Field(ge=0, description="Points the reward cost")
    entry_id: uuid.UUID = Field(description="The ledger entry that took the points")
    balance: int = Field(ge=0, description="The member's balance after this change")
    created_at: UtcDatetime


class RedemptionCreated(_Redemption):
    """A member redeemed a reward (points and stock taken)."""

    event_type = "rewards.redemption_created"
    schema_version = 2  # v1 sent the redemption's id as `id`
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "redemption_id": REDEMPTION_ID,
                    "member_id": MEMBER_ID,
                    "reward_id": REWARD_ID,
                    "cost": 200,
                    "status": "pending",
                    "entry_id": ENTRY_ID,
                    "balance": 140,
                    "created_at": "2026-11-23T12:00:00Z",
                }
            ]
        }
    )

    status: Literal["pending"]


class RedemptionCancelled(_Redemption):
    """A redemption was cancelled: its points and stock were given back."""

    event_type = "rewards.redemption_cancelled"
    schema_version = 2  # v1 sent the redemption's id as `id`
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "redemption_id": REDEMPTION_ID,
                    "member_id": MEMBER_ID,
                    "reward_id": REWARD_ID,
                    "cost": 200,
                    "status": "cancelled",
                    "entry_id": ENTRY_ID,
                    "balance": 340,
                    "created_at": "2026-11-23T12:00:00Z",
                    "cancelled_at": "2026-11-23T15:20:00Z",
                }
            ]
        }
    )

    status: Literal["cancelled"]
    cancelled_at: UtcDatetime
