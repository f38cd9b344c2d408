"""Who is (or was) in which community, learned from members' events (event-carried state)."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field

from services.common.db import UTCDateTime
from services.feedback.db import FeedbackModel


class CommunityMembership(FeedbackModel, table=True):
    """A membership from `member.joined_community` / `member.left_community`; it is current
    while `left_at` is null or older than the last join. Kept after leaving, so a member who
    left can still be reported for what they did."""

    __tablename__ = "community_memberships"

    community_id: uuid.UUID = Field(primary_key=True)
    member_id: uuid.UUID = Field(primary_key=True, index=True)
    joined_at: datetime = Field(sa_type=UTCDateTime())
    left_at: datetime | None = Field(default=None, sa_type=UTCDateTime())
