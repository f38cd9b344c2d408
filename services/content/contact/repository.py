"""The contact budget's hot statements: compiled once, run on the raw pool (see
`services.common.db.PreparedRead` / `PreparedAtomic`), no request session."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta

import asyncpg
import sqlalchemy as sa

from services.common.db import Database, PreparedAtomic, PreparedRead, table_of
from services.content.contact.models import ContactPermit, ContactPolicy
from services.content.policy.service import quiet_hours_query

POLICIES = table_of(ContactPolicy)
PERMITS = table_of(ContactPermit)

_community = sa.bindparam("community_id", type_=sa.Uuid())
_publishing = quiet_hours_query(_community).subquery("publishing")
_one = sa.select(sa.literal_column("1").label("one")).subquery("one")

# The community's contact policy and the publishing policy's quiet hours, in one read (a
# row always comes back: NULLs where a community has no policy of its own).
_LIMITS = PreparedRead(
    sa.select(
        POLICIES.c.weekly_max,
        POLICIES.c.weekly_max_promotions,
        POLICIES.c.quiet_start,
        POLICIES.c.quiet_end,
        _publishing.c.has_policy.label("publishing_set"),
        _publishing.c.quiet_start.label("publishing_quiet_start"),
        _publishing.c.quiet_end.label("publishing_quiet_end"),
    ).select_from(_one.outerjoin(POLICIES, POLICIES.c.community_id == _community).outerjoin(_publishing, sa.true()))
)

# Lock the member's budget row, count the window and write the permit if it has room: the
# migration's `content_grant_permit`, one round trip and one transaction (see service.py).
_GRANT = PreparedAtomic(
    sa.text(
        "SELECT total, promotions, oldest, oldest_promotion, granted FROM content_grant_permit("
        ":id, :member_id, :community_id, :kind, :requested_by, :now, :window, :weekly_max, :weekly_max_promotions)"
    )
)


async def limits_row(db: Database, community_id: uuid.UUID) -> asyncpg.Record:
    row = await _LIMITS.fetch_one(db, community_id=community_id)
    assert row is not None  # the outer joins always give one row
    return row


async def grant_permit(
    db: Database,
    permit_id: uuid.UUID,
    member_id: uuid.UUID,
    community_id: uuid.UUID,
    kind: str,
    requested_by: str,
    now: datetime,
    window: timedelta,
    weekly_max: int,
    weekly_max_promotions: int,
) -> asyncpg.Record:
    row = await _GRANT.fetch_one(
        db,
        id=permit_id,
        member_id=member_id,
        community_id=community_id,
        kind=kind,
        requested_by=requested_by,
        now=now,
        window=window,
        weekly_max=weekly_max,
        weekly_max_promotions=weekly_max_promotions,
    )
    assert row is not None  # the function always answers one row
    return row


_since = sa.bindparam("since", type_=sa.DateTime(timezone=True))
_promotion = PERMITS.c.kind == "promotion"
_USAGE = PreparedRead(
    sa.select(  # type: ignore[arg-type]
        sa.func.count().label("total"),
        sa.func.count().filter(_promotion).label("promotions"),
        sa.func.min(PERMITS.c.granted_at).label("oldest"),
        sa.func.min(PERMITS.c.granted_at).filter(_promotion).label("oldest_promotion"),
    ).where(PERMITS.c.member_id == sa.bindparam("member_id", type_=sa.Uuid()), PERMITS.c.granted_at > _since)
)


async def usage_row(db: Database, member_id: uuid.UUID, since: datetime) -> asyncpg.Record:
    """The member's touches granted after `since`, as committed."""
    row = await _USAGE.fetch_one(db, member_id=member_id, since=since)
    assert row is not None  # an aggregate always gives one row
    return row
