"""A member's data as the rewards service holds it (for the export the gateway composes)."""

from __future__ import annotations

import uuid
from datetime import date, datetime

from pydantic import BaseModel

from services.rewards.badges.schemas import MemberBadgeRead
from services.rewards.catalog.schemas import RedemptionRead
from services.rewards.points.schemas import LedgerEntryRead, PointsRead


class AdjustmentExport(BaseModel):
    id: uuid.UUID
    delta: int
    reason: str
    created_at: datetime


class MemberExport(BaseModel):
    member_id: uuid.UUID
    erased_at: datetime | None
    points: PointsRead
    ledger: list[LedgerEntryRead]
    badges: list[MemberBadgeRead]
    redemptions: list[RedemptionRead]
    adjustments: list[AdjustmentExport]
    activity_counts: dict[str, int]
    check_in_days: list[date]
