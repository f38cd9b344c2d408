"""Publishing policies (a community without a row has the defaults)."""

from __future__ import annotations

import uuid
from datetime import datetime, time

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.content.db import ContentModel


class PublishingPolicy(ContentModel, table=True):
    __tablename__ = "publishing_policies"
    __table_args__ = (
        sa.CheckConstraint("max_promotions_per_day >= 0", name="cap_not_negative"),
        sa.CheckConstraint("min_gap_minutes >= 0", name="gap_not_negative"),
        sa.CheckConstraint("(quiet_start IS NULL) = (quiet_end IS NULL)", name="quiet_both_or_none"),
    )

    community_id: uuid.UUID = Field(primary_key=True)
    quiet_start: time | None = None
    quiet_end: time | None = None
    max_promotions_per_day: int
    min_gap_minutes: int
    updated_at: datetime = Field(sa_type=UTCDateTime())
