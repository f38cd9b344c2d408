"""The gateway's record of erasures: one row per member and service that confirmed it."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime, utcnow
from services.gateway.db import GatewayModel


class MemberErasure(GatewayModel, table=True):
    """`service` erased `member_id` at `erased_at`, as its event `event_id` says. Members' row
    comes from `member.erased` itself (the request); the others from `<service>.member_erased`."""

    __tablename__ = "member_erasures"
    __table_args__ = (
        sa.CheckConstraint("service IN ('members', 'content', 'rewards', 'feedback')", name="service_known"),
    )

    member_id: uuid.UUID = Field(primary_key=True)
    service: str = Field(primary_key=True, max_length=16)
    erased_at: datetime = Field(sa_type=UTCDateTime())
    event_id: uuid.UUID
    recorded_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime())
