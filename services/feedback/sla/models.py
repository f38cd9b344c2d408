"""SLA policies per priority and business hours per community."""

from __future__ import annotations

import uuid
from datetime import datetime, time

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.feedback.db import FeedbackModel, metadata


class SlaPolicy(FeedbackModel, table=True):
    """Targets for one priority (absent: the defaults in `sla.service`)."""

    __tablename__ = "sla_policies"

    priority: str = Field(primary_key=True, max_length=16)
    first_response_minutes: int
    resolution_minutes: int
    business_hours_only: bool
    updated_at: datetime = Field(sa_type=UTCDateTime())


class BusinessHours(FeedbackModel, table=True):
    """When a community's support works: weekdays (ISO 1-7) from `start` to `end`, local time."""

    __tablename__ = "business_hours"

    community_id: uuid.UUID = Field(primary_key=True)
    timezone: str = Field(max_length=64)
    days: list[int] = Field(sa_type=postgresql.ARRAY(sa.SmallInteger()))
    start: time
    end: time
    updated_at: datetime = Field(sa_type=UTCDateTime())


# The version of the support settings, SLA policies and business hours together: a statement
# trigger on each of them sets it to a new number from its own sequence (migration 0006), so a
# process that cached them knows, in the statement that files a ticket, whether they changed
# (`sla.config`). No row yet: version 0.
support_config_version = sa.Table(
    "support_config_version",
    metadata,
    sa.Column("id", sa.SmallInteger(), primary_key=True),
    sa.Column("version", sa.BigInteger(), nullable=False),
)
