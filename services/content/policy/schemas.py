"""The HTTP contract of publishing policies and best times."""

from __future__ import annotations

from datetime import datetime, time
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, PlainSerializer

# "23:00" on the wire, hours and minutes only.
HourMinute = Annotated[time, PlainSerializer(lambda t: t.strftime("%H:%M"), return_type=str)]


class QuietHoursBody(BaseModel):
    model_config = ConfigDict(extra="forbid")

    start: HourMinute = Field(description="Local time the quiet window starts, `HH:MM`")
    end: HourMinute = Field(description="Local time it ends, `HH:MM`; before `start` means it wraps midnight")


class PublishingPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    quiet_hours: QuietHoursBody | None = Field(description="null: no quiet hours")
    max_promotions_per_day: int = Field(ge=0, le=1000)
    min_gap_minutes: int = Field(ge=0, le=7 * 24 * 60)


class PublishingPolicyRead(BaseModel):
    community_id: str
    quiet_hours: QuietHoursBody | None
    max_promotions_per_day: int
    min_gap_minutes: int
    timezone: str = Field(description="The community's zone, in which quiet hours and days are read")
    is_default: bool = Field(description="True until an operator sets a policy")


class BestTime(BaseModel):
    at: datetime
    score: float = Field(description="This local hour's share of the community's recent activity (0-1)")


class BestTimes(BaseModel):
    items: list[BestTime]
