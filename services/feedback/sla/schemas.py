"""SLA policies and business hours over HTTP."""

from __future__ import annotations

from datetime import time
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

Priority = Literal["low", "normal", "high", "urgent"]
MAX_MINUTES = 525_600  # a year


class SlaPolicyItem(BaseModel):
    model_config = ConfigDict(extra="forbid")

    priority: Priority
    first_response_minutes: int = Field(gt=0, le=MAX_MINUTES)
    resolution_minutes: int = Field(gt=0, le=MAX_MINUTES)
    business_hours_only: bool = Field(
        default=False, description="Count only the community's business hours (24/7 if it has none)"
    )


class SlaPolicies(BaseModel):
    """The targets for every priority; a PUT may name some priorities, the others keep theirs."""

    model_config = ConfigDict(extra="forbid")

    items: list[SlaPolicyItem] = Field(max_length=4)

    @model_validator(mode="after")
    def _one_per_priority(self) -> SlaPolicies:
        names = [item.priority for item in self.items]
        if len(set(names)) != len(names):
            raise ValueError("each priority appears at most once")
        return self


DAY_NUMBERS = Field(min_length=1, max_length=7, description="ISO weekdays, 1 = Monday … 7 = Sunday")


class BusinessHoursBody(BaseModel):
    """A community's support hours: `days` from `start` to `end` in `timezone`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"timezone": "Asia/Shanghai", "days": [1, 2, 3, 4, 5], "start": "09:00", "end": "18:00"}]
        },
    )

    timezone: str = Field(max_length=64)
    days: list[int] = DAY_NUMBERS
    start: time
    end: time

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown time zone") from exc
        return value

    @field_validator("days")
    @classmethod
    def _weekdays(cls, value: list[int]) -> list[int]:
        if any(day < 1 or day > 7 for day in value) or len(set(value)) != len(value):
            raise ValueError("days are distinct ISO weekdays from 1 (Monday) to 7 (Sunday)")
        return sorted(value)

    @model_validator(mode="after")
    def _start_before_end(self) -> BusinessHoursBody:
        if self.start.tzinfo is not None or self.end.tzinfo is not None:
            raise ValueError("start and end are local times without an offset")
        if self.start >= self.end:
            raise ValueError("start is before end (overnight hours are not supported)")
        return self
