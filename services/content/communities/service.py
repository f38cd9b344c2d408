"""What content knows about communities and members, and how it learns it.

- **Memberships, consent and the activity histogram are event-carried state**: handlers of
  `member.joined_community` / `member.left_community`, `member.created` / `member.updated`
  and `activity.recorded` keep content's own copy, so votes, permits and best times never
  call members on their hot path.
- **A community's time zone** has no event of its own (members emits nothing when a
  community is created or its zone changes), so `CommunityZones` asks members'
  `GET /v1/communities/{id}` through the shared client (its timeout applies) and caches the
  answer in the process for a few minutes. Every `activity.recorded` carries the zone too:
  handlers store it in `community_zones`, which is the fallback when members does not
  answer. A community members does not know is a 404.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import httpx
import sqlalchemy as sa
import structlog
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded, known_zone
from services.common.db import Database, PreparedRead, table_of, utcnow
from services.common.events import Event
from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, sign_internal_token
from services.common.problems import NotFound, ServiceUnavailable
from services.common.settings import Settings
from services.content.communities.models import ActivityHour, CommunityMember, CommunityZone, MemberConsent

log = structlog.get_logger("qunyun.content.communities")

ZONES = table_of(CommunityZone)
MEMBERS = table_of(CommunityMember)
CONSENTS = table_of(MemberConsent)
HOURS = table_of(ActivityHour)


_STORED_ZONE = PreparedRead(
    sa.select(ZONES.c.timezone).where(ZONES.c.community_id == sa.bindparam("community_id", type_=sa.Uuid()))
)


class CommunityNotFound(NotFound):
    slug, title = "community-not-found", "Community not found"


class ZoneUnavailable(ServiceUnavailable):
    slug, title = "community-zone-unavailable", "Community time zone unavailable"


@dataclass
class _Cached:
    zone: ZoneInfo
    expires: float


class CommunityZones:
    """Community id -> ZoneInfo: the process cache, then members, then the stored copy.

    It uses the service's Database itself, outside any request session: a cache miss calls
    members with no transaction open, and stores a zone in its own short transaction only
    when it differs from what this process last stored."""

    def __init__(self, http: httpx.AsyncClient, settings: Settings, db: Database, ttl_seconds: float = 300.0) -> None:
        self.http = http
        self.settings = settings
        self.db = db
        self.ttl_seconds = ttl_seconds
        self._cache: dict[uuid.UUID, _Cached] = {}
        self._stored: dict[uuid.UUID, str] = {}

    def clear(self) -> None:
        self._cache.clear()
        self._stored.clear()

    async def zone_of(self, community_id: uuid.UUID) -> ZoneInfo:
        cached = self._cache.get(community_id)
        now = time.monotonic()
        if cached is not None and cached.expires > now:
            return cached.zone
        name = await self._ask_members(community_id)
        if name is None:
            row = await _STORED_ZONE.fetch_one(self.db, community_id=community_id)
            if row is None:
                raise ZoneUnavailable(
                    "The members service did not answer and no time zone is known for this community."
                )
            name = row["timezone"]
        elif self._stored.get(community_id) != name:
            async with self.db.session() as session:
                await remember_zone(session, community_id, name, utcnow())
                await self.db.commit(session)
            self._stored[community_id] = name
        zone = _zone(name)
        self._cache[community_id] = _Cached(zone, now + self.ttl_seconds)
        return zone

    async def _ask_members(self, community_id: uuid.UUID) -> str | None:
        """The zone members holds (None if it could not be asked); 404 if it has no such community."""
        try:
            response = await self.http.get(
                f"{self.settings.url_for('members')}/v1/communities/{community_id}",
                headers={INTERNAL_TOKEN_HEADER: sign_internal_token(SYSTEM, self.settings)},
            )
        except httpx.HTTPError as exc:
            log.warning("community_zone_lookup_failed", community_id=str(community_id), error=type(exc).__name__)
            return None
        if response.status_code == 404:
            raise CommunityNotFound("No such community.")
        if response.status_code != 200:
            log.warning("community_zone_lookup_failed", community_id=str(community_id), status=response.status_code)
            return None
        try:
            name = response.json()["timezone"]
        except (ValueError, KeyError, TypeError):
            return None
        return name if isinstance(name, str) else None


def _zone(name: str) -> ZoneInfo:
    try:
        return known_zone(name)
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ZoneUnavailable(f"The community's time zone {name!r} is unknown here.") from exc


async def remember_zone(session: AsyncSession, community_id: uuid.UUID, name: str, now: datetime) -> None:
    await remember_zones(session, {community_id: name}, now)


async def remember_zones(session: AsyncSession, zones: dict[uuid.UUID, str], now: datetime) -> None:
    """Store communities' zones in one statement (rows are written only where a zone changed;
    sorted, so concurrent batches lock in one order)."""
    if not zones:
        return
    rows = [{"community_id": c, "timezone": name, "updated_at": now} for c, name in sorted(zones.items())]
    stmt = postgresql.insert(ZONES).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[ZONES.c.community_id],
            set_={"timezone": stmt.excluded.timezone, "updated_at": stmt.excluded.updated_at},
            where=ZONES.c.timezone != stmt.excluded.timezone,
        )
    )


# ---------------------------------------------------------------- memberships and consent


async def record_join(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID, at: datetime) -> None:
    await session.execute(
        postgresql.insert(MEMBERS)
        .values(community_id=community_id, member_id=member_id, joined_at=at)
        .on_conflict_do_nothing(index_elements=[MEMBERS.c.community_id, MEMBERS.c.member_id])
    )


async def record_leave(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID) -> None:
    await session.execute(
        MEMBERS.delete().where(MEMBERS.c.community_id == community_id, MEMBERS.c.member_id == member_id)
    )


async def is_member(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID) -> bool:
    found = await session.scalar(
        sa.select(sa.literal(True)).where(MEMBERS.c.community_id == community_id, MEMBERS.c.member_id == member_id)
    )
    return bool(found)


async def record_consent(session: AsyncSession, member_id: uuid.UUID, marketing: bool, at: datetime) -> None:
    """Keep the newest consent (events of one member may arrive out of order across batches)."""
    stmt = postgresql.insert(CONSENTS).values(member_id=member_id, marketing=marketing, updated_at=at)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[CONSENTS.c.member_id],
            set_={"marketing": stmt.excluded.marketing, "updated_at": stmt.excluded.updated_at},
            where=CONSENTS.c.updated_at <= stmt.excluded.updated_at,
        )
    )


async def marketing_consent(session: AsyncSession, member_id: uuid.UUID) -> bool:
    """False unless members said yes: promotions are opt-in."""
    return bool(await session.scalar(sa.select(CONSENTS.c.marketing).where(CONSENTS.c.member_id == member_id)))


# ---------------------------------------------------------------- the activity histogram


def week_start(day: date) -> date:
    return day - timedelta(days=day.weekday())


def hour_of_week(local: datetime) -> int:
    return local.weekday() * 24 + local.hour


async def record_activity(session: AsyncSession, events: Sequence[Event[ActivityRecorded]]) -> None:
    """Count a batch of activities into the histogram with one statement (the inbox has
    already dropped redeliveries, so each activity counts once)."""
    counts: dict[tuple[uuid.UUID, date, int], int] = {}
    zones: dict[uuid.UUID, str] = {}
    for event in events:
        data = event.data
        local = data.occurred_at.astimezone(known_zone(data.timezone))
        key = (data.community_id, week_start(local.date()), hour_of_week(local))
        counts[key] = counts.get(key, 0) + 1
        zones[data.community_id] = data.timezone
    if not counts:
        return
    rows: list[dict[str, Any]] = [
        {"community_id": c, "week_start": w, "hour_of_week": h, "activities": n} for (c, w, h), n in counts.items()
    ]
    rows.sort(key=lambda r: (r["community_id"], r["week_start"], r["hour_of_week"]))  # one lock order
    stmt = postgresql.insert(HOURS).values(rows)
    await session.execute(
        stmt.on_conflict_do_update(
            index_elements=[HOURS.c.community_id, HOURS.c.week_start, HOURS.c.hour_of_week],
            set_={"activities": HOURS.c.activities + stmt.excluded.activities},
        )
    )
    await remember_zones(session, zones, utcnow())


async def hour_histogram(session: AsyncSession, community_id: uuid.UUID, since_week: date) -> dict[int, int]:
    """Activities per local hour of the week, summed over the weeks starting at `since_week`."""
    rows = await session.execute(
        sa.select(HOURS.c.hour_of_week, sa.func.sum(HOURS.c.activities))
        .where(HOURS.c.community_id == community_id, HOURS.c.week_start >= since_week)
        .group_by(HOURS.c.hour_of_week)
    )
    return {int(hour): int(total) for hour, total in rows}
