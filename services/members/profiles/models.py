"""Member profiles. Email and phone are stored only encrypted, with a blind index each."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.orm import column_property
from sqlmodel import Field

from services.common.db import UTCDateTime, new_id, utcnow
from services.members.activity.models import MemberActivity
from services.members.db import MembersModel

# JSONB: containment and equality on attribute values.
JSONDocument = postgresql.JSONB()


class Member(MembersModel, table=True):
    __tablename__ = "members"
    __table_args__ = (sa.Index("ix_members_created_at_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # NULL once erased, so the partner may reuse it; unique among the rest (NULLs never clash).
    external_id: str | None = Field(default=None, max_length=200, unique=True)
    display_name: str = Field(max_length=200)
    email_cipher: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    email_index: str | None = Field(default=None, max_length=64, index=True)
    phone_cipher: bytes | None = Field(default=None, sa_type=sa.LargeBinary)
    phone_index: str | None = Field(default=None, max_length=64, index=True)
    tags: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    attributes: dict[str, Any] = Field(default_factory=dict, sa_type=JSONDocument, nullable=False)
    consent_marketing: bool = Field(default=False)
    consent_updated_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    joined_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime, nullable=False)
    erased_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MemberTag(MembersModel, table=True):
    """One row per (member, tag): the tag filters and segment rules use its index."""

    __tablename__ = "member_tags"
    __table_args__ = (sa.Index("ix_member_tags_tag_member_id", "tag", "member_id"),)

    member_id: uuid.UUID = Field(foreign_key="members.id", ondelete="CASCADE", primary_key=True)
    tag: str = Field(max_length=50, primary_key=True)


def last_active_at(member_id: sa.ColumnElement[uuid.UUID]) -> sa.ScalarSelect[datetime]:
    """A member's last activity (NULL if never active), read from the narrow `member_activity`."""
    recent = MemberActivity.__table__  # type: ignore[attr-defined]
    return (
        sa.select(recent.c.last_active_at)
        .where(recent.c.member_id == member_id)
        .correlate_except(recent)
        .scalar_subquery()
    )


# Loaded with every `select(Member)`, so `member.last_active_at` reads as when it was a column;
# profile writes never change it, so a flush need not expire it (no lazy load in async code).
_members_id = sa.inspect(Member).local_table.c.id
sa.inspect(Member).add_property("last_active_at", column_property(last_active_at(_members_id), expire_on_flush=False))
