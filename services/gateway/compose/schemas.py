"""The composed views' answers. Their parts are typed with the owning services' own schemas
(the gateway may import services' schemas, never their code), so the public document shows
exactly what each service sends."""

from __future__ import annotations

import uuid
from datetime import date, datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from services.common.settings import ServiceName
from services.content.contact.schemas import ContactBudgetRead
from services.content.policy.schemas import BestTime
from services.feedback.tickets.schemas import TicketRead
from services.members.analytics.schemas import ChurnRiskMember, EngagementDay, RetentionCohort
from services.members.communities.schemas import CommunityRead
from services.members.profiles.schemas import MemberRead
from services.rewards.analytics.schemas import PointsFlow, RedemptionCounts
from services.rewards.badges.schemas import MemberBadgeRead
from services.rewards.points.schemas import PointsRead

DEGRADED_DESCRIPTION = "Services whose part is missing (failed, refused or slower than the budget)"


class OverviewRead(BaseModel):
    """One member at a glance; a part that could not be read is null and its service is in `degraded`."""

    member: MemberRead
    points: PointsRead | None
    badges: list[MemberBadgeRead] | None
    open_tickets: list[TicketRead] | None = Field(description="Tickets in `new`, `open` or `pending`, newest first")
    contact_budget: ContactBudgetRead | None = Field(
        description="Direct touches in the last 7 days against the budget (of `community_id` if given)"
    )
    degraded: list[ServiceName] = Field(description=DEGRADED_DESCRIPTION)


class DashboardWindow(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    from_: date = Field(alias="from", serialization_alias="from", description="First local day")
    to: date = Field(description="Last local day (included)")
    timezone: str
    starts_at: datetime = Field(description="Local midnight starting `from`, in UTC")
    ends_at: datetime = Field(description="Local midnight ending `to`, in UTC (excluded)")


class EngagementSummary(BaseModel):
    dau: int = Field(description="On the last day of the window")
    wau: int
    mau: int
    stickiness: float
    days: list[EngagementDay] = Field(description="The daily series, oldest first")


class ContentFigures(BaseModel):
    published: int
    scheduled: int
    published_by_kind: dict[str, int]


class SupportFigures(BaseModel):
    tickets: int
    sla_attainment: float | None
    median_first_response_minutes: float | None
    csat_average: float | None
    backlog_by_status: dict[str, int]


class DashboardRead(BaseModel):
    """A community's figures over a window of local days, each as its owning service reports it
    (`/v1/analytics/engagement`, `retention`, `churn-risk`, `activity-heatmap`, `best-times`, `/v1/analytics/rewards`,
    `/v1/analytics/content`, `/v1/analytics/support`)."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    community: CommunityRead
    window: DashboardWindow
    engagement: EngagementSummary | None
    retention: list[RetentionCohort] | None = Field(description="Weekly join cohorts up to the window's last day")
    churn_risk: list[ChurnRiskMember] | None = Field(description="Members whose activity fell most, with reasons")
    heatmap: list[list[int]] | None = Field(
        default=None, description="Events over the window: 7 rows (Monday first) x 24 local hours"
    )
    best_times: list[BestTime] | None = Field(description="The coming week's best local hours to publish")
    points: PointsFlow | None
    redemptions: RedemptionCounts | None
    content: ContentFigures | None
    support: SupportFigures | None
    degraded: list[ServiceName] = Field(description=DEGRADED_DESCRIPTION)
    generated_at: datetime = Field(description="When the figures were read (answers are cached briefly)")


class ServiceExport(BaseModel):
    """One service's part of a member export, as that service wrote it."""

    model_config = ConfigDict(extra="allow")


class MemberExportRead(BaseModel):
    """Everything every service holds about one member."""

    member_id: uuid.UUID
    exported_at: datetime
    services: dict[ServiceName, ServiceExport] = Field(description="members, content, rewards, feedback")


class ServiceErasure(BaseModel):
    service: ServiceName
    status: Literal["erased", "pending"]
    erased_at: datetime | None = Field(description="When the service confirmed it removed the member's data")


class ErasureStatusRead(BaseModel):
    """Which services have confirmed a member's erasure (proof for a data-protection request)."""

    member_id: uuid.UUID
    requested_at: datetime = Field(description="When members erased the profile and emitted `member.erased`")
    complete: bool
    completed_at: datetime | None = Field(description="The last confirmation, once every service has confirmed")
    services: list[ServiceErasure]
