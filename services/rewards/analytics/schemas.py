"""Rewards analytics over HTTP: the points and redemptions of a window."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class PointsFlow(BaseModel):
    issued: int = Field(
        description="Points credited by earning rules and positive adjustments; with `community_id`, "
        "only points earned by activity in that community"
    )
    redeemed: int = Field(description="Points spent on redemptions, less the refunds of cancelled ones")
    expired: int = Field(description="Points that expired unspent")


class RedemptionCounts(BaseModel):
    created: int = Field(description="Redemptions made in the window")
    pending: int = Field(description="Of those, still waiting to be handed over")
    fulfilled: int
    cancelled: int
    points: int = Field(description="Points those redemptions cost (cancelled ones included)")


class RewardsAnalytics(BaseModel):
    """Figures over `[from, to)`. The catalog and balances are program-wide, so `redeemed`,
    `expired` and `redemptions` are too; only `issued` can be narrowed to a community."""

    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    community_id: uuid.UUID | None
    points: PointsFlow
    redemptions: RedemptionCounts
