"""Support analytics over HTTP."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, Field


class AgentBreaches(BaseModel):
    assignee_id: uuid.UUID | None = Field(description="The agent assigned when the breach was marked; null: unassigned")
    breaches: int


class SupportAnalytics(BaseModel):
    """Figures over tickets created in `[from, to)`; the backlog is the current unresolved tickets among them."""

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    community_id: uuid.UUID | None
    tickets: int
    sla_attainment: float | None = Field(description="Share of the tickets never breached; null without tickets")
    median_first_response_minutes: float | None = Field(description="In business minutes where the policy says so")
    p90_first_response_minutes: float | None
    median_resolution_minutes: float | None
    csat_average: float | None
    csat_response_rate: float | None = Field(description="Ratings received / surveys requested")
    backlog_by_status: dict[str, int]
    backlog_by_priority: dict[str, int]
    breaches_by_agent: list[AgentBreaches]

    model_config = {"populate_by_name": True}
