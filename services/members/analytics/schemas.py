"""Analytics answers: engagement per day, retention cohorts, churn risk, activity heat map."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel, ConfigDict, Field


class EngagementDay(BaseModel):
    day: date = Field(description="A local day in the community's zone")
    dau: int = Field(description="Members active that day")
    wau: int = Field(description="Members active in the 7 days ending that day")
    mau: int = Field(description="Members active in the 30 days ending that day")
    stickiness: float = Field(description="DAU / MAU (0 when MAU is 0)")


class EngagementRead(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    community_id: uuid.UUID
    timezone: str
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    days: list[EngagementDay]


class RetentionCohort(BaseModel):
    cohort_start: date = Field(description="Monday of the week (local) these members joined")
    size: int
    retained: list[float] = Field(description="Fraction of the cohort active in week 0, 1, ... after joining")


class RetentionRead(BaseModel):
    community_id: uuid.UUID
    timezone: str
    weeks: int
    cohorts: list[RetentionCohort]


class ChurnRiskMember(BaseModel):
    member_id: uuid.UUID
    last_active_at: datetime | None
    recent: int = Field(description="Events in the recent window")
    previous: int = Field(description="Events in the window before it")
    score: float = Field(description="Share of activity lost: (previous - recent) / previous")
    reasons: list[str] = Field(
        default_factory=list, description="Why the member is at risk, in words an operator can act on"
    )


class ChurnRiskRead(BaseModel):
    community_id: uuid.UUID
    window_days: int
    recent_from: date
    previous_from: date
    as_of: date
    items: list[ChurnRiskMember]


class HeatmapRead(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    community_id: uuid.UUID
    timezone: str
    from_: date = Field(alias="from", serialization_alias="from")
    to: date
    counts: list[list[int]] = Field(description="7 rows (Monday first) x 24 local hours of event counts")
