"""The contact budget's hot statements: compiled once, run on the raw pool (see
`services.common.db.PreparedRead` / `PreparedAtomic`), no request session."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, time, timedelta

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

# The whole ask but a reply's: the migration's `content_ask_permit` (limits, consent, quiet
# hours, then lock, count and insert), one round trip and one transaction (see service.py).
_ASK = PreparedAtomic(
    sa.text(
        "SELECT weekly_max, weekly_max_promotions, quiet_start, quiet_end, quiet_inherited, is_default, refused,"
        " total, promotions, oldest, oldest_promotion, granted FROM content_ask_permit(:id, :member_id,"
        " :community_id, :kind, :requested_by, :now, :local, :window, :default_max, :default_max_promotions,"
        " :default_quiet_start, :default_quiet_end)"
    )
)


async def limits_row(db: Database, community_id: uuid.UUID) -> asyncpg.Record:
    row = await _LIMITS.fetch_one(db, community_id=community_id)
    assert row is not None  # the outer joins always give one row
    return row


@dataclass(frozen=True)
class Defaults:
    """What a community without policies gets (the function is told, not a second copy)."""

    weekly_max: int
    weekly_max_promotions: int
    quiet_start: time | None
    quiet_end: time | None


async def ask_permit(
    db: Database,
    permit_id: uuid.UUID,
    member_id: uuid.UUID,
    community_id: uuid.UUID,
    kind: str,
    requested_by: str,
    now: datetime,
    local: time,
    window: timedelta,
    defaults: Defaults,
) -> asyncpg.Record:
    """One row: the limits in force, `refused` (`no-consent`, `quiet-hours` or null), the
    member's usage of the window before this ask and whether the permit was written."""
    row = await _ASK.fetch_one(
        db,
        id=permit_id,
        member_id=member_id,
        community_id=community_id,
        kind=kind,
        requested_by=requested_by,
        now=now,
        local=local,
        window=window,
        default_max=defaults.weekly_max,
        default_max_promotions=defaults.weekly_max_promotions,
        default_quiet_start=defaults.quiet_start,
        default_quiet_end=defaults.quiet_end,
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
