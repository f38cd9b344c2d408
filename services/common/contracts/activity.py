"""Contracts of member activity (emitted by the members service)."""

from __future__ import annotations

import uuid
from datetime import date
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import ConfigDict, Field, field_validator

from services.common.contracts.base import EventModel, UtcDatetime
from services.common.contracts.members import COMMUNITY_ID, MEMBER_ID


@lru_cache(maxsize=1024)
def known_zone(name: str) -> ZoneInfo:
    """The IANA zone of this name (cached: thousands of events share a few zones)."""
    return ZoneInfo(name)


class ActivityRecorded(EventModel):
    """A member's activity was recorded (a check-in, a message, a vote...)."""

    event_type = "activity.recorded"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "activity_id": "c1a2b3d4-e5f6-4a7b-8c9d-0e1f2a3b4c5d",
                    "member_id": MEMBER_ID,
                    "community_id": COMMUNITY_ID,
                    "type": "check_in",
                    "occurred_at": "2026-11-21T01:30:00Z",
                    "local_date": "2026-11-21",
                    "timezone": "Asia/Shanghai",
                    "properties": {"channel": "mobile"},
                }
            ]
        }
    )

    activity_id: uuid.UUID = Field(description="The activity's id (the client's `id` when it gave one)")
    member_id: uuid.UUID
    community_id: uuid.UUID
    type: str = Field(max_length=64, description="Activity type, e.g. `check_in`, `message_sent`")
    occurred_at: UtcDatetime
    local_date: date = Field(description="The day it happened in the community's time zone")
    timezone: str = Field(description="The community's IANA time zone, e.g. `Asia/Shanghai`")
    properties: dict[str, Any] = Field(description="What the client sent with it; emptied once the member is erased")

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            known_zone(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value
