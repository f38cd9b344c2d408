"""Communities: a group a member can belong to, with the time zone its days are counted in."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlmodel import Field

from services.common.db import UTCDateTime, new_id, utcnow
from services.members.db import MembersModel

DEFAULT_TIMEZONE = "Asia/Shanghai"


class Community(MembersModel, table=True):
    __tablename__ = "communities"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    description: str = Field(default="", max_length=2000)
    timezone: str = Field(default=DEFAULT_TIMEZONE, max_length=64)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False, index=True)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
