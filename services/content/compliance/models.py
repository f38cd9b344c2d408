"""A community's own forbidden-terms list (a community without a row has the defaults)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlmodel import Field

from services.common.db import UTCDateTime
from services.content.db import ContentModel


class ForbiddenTermList(ContentModel, table=True):
    """The whole list as the operator last PUT it: `[{term, category, match}]`, read and
    written as one (an empty list is a community that checks nothing)."""

    __tablename__ = "forbidden_term_lists"
    __table_args__ = (sa.CheckConstraint("jsonb_typeof(terms) = 'array'", name="terms_array"),)

    community_id: uuid.UUID = Field(primary_key=True)
    terms: list[dict[str, Any]] = Field(sa_type=postgresql.JSONB())
    updated_at: datetime = Field(sa_type=UTCDateTime())
