"""The contact budget: every direct touch of a member, by any partner and of any kind
(except replies), counts in a rolling 7 days.

A grant is one atomic step per member, done by the database in one statement that is its
own transaction (`content_ask_permit`, see the content migrations): it locks the member's
`contact_budgets` row (one upsert whose `DO UPDATE` takes the row lock, creating the row if
missing), then counts the window and writes the permit if there is room; the function is
VOLATILE, so under READ COMMITTED the count takes its snapshot after the lock is held and
sees every grant before it. Concurrent requests for one member queue on that row; requests
for different members never wait on each other.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, new_id, rfc3339, table_of
from services.common.problems import Conflict
from services.content.contact import repository
from services.content.contact.models import ContactBudget, ContactPermit, ContactPolicy
from services.content.contact.schemas import ContactBudgetRead, ContactPolicyUpdate, PermitRead, Remaining
from services.content.policy.rules import DEFAULT_POLICY, QuietHours
from services.content.policy.service import load_policy, quiet_hours_of

POLICIES = table_of(ContactPolicy)
BUDGETS = table_of(ContactBudget)
PERMITS = table_of(ContactPermit)

WINDOW = timedelta(days=7)
DEFAULT_WEEKLY_MAX = 3
DEFAULT_WEEKLY_MAX_PROMOTIONS = 1
_DEFAULTS = repository.Defaults(
    DEFAULT_WEEKLY_MAX,
    DEFAULT_WEEKLY_MAX_PROMOTIONS,
    DEFAULT_POLICY.quiet.start if DEFAULT_POLICY.quiet else None,
    DEFAULT_POLICY.quiet.end if DEFAULT_POLICY.quiet else None,
)


class ContactRefused(Conflict):
    """A permit refused; `reason` is the problem type (also the metric label)."""


class BudgetExhausted(ContactRefused):
    slug, title = "contact-budget-exhausted", "Contact budget exhausted"


class QuietHoursRefused(ContactRefused):
    slug, title = "quiet-hours", "Inside the community's quiet hours"


class NoConsent(ContactRefused):
    slug, title = "no-consent", "No marketing consent"


@dataclass(frozen=True)
class Limits:
    weekly_max: int
    weekly_max_promotions: int
    quiet: QuietHours | None
    quiet_inherited: bool
    is_default: bool


async def load_limits(session: AsyncSession, community_id: uuid.UUID | None) -> Limits:
    row = None
    if community_id is not None:
        row = (await session.execute(sa.select(POLICIES).where(POLICIES.c.community_id == community_id))).first()
    if row is not None and row.quiet_start is not None:
        return Limits(
            row.weekly_max, row.weekly_max_promotions, QuietHours(row.quiet_start, row.quiet_end), False, False
        )
    publishing = (await load_policy(session, community_id))[0].quiet if community_id else None
    if row is None:
        return Limits(DEFAULT_WEEKLY_MAX, DEFAULT_WEEKLY_MAX_PROMOTIONS, publishing, True, True)
    return Limits(row.weekly_max, row.weekly_max_promotions, publishing, True, False)


async def save_policy(
    session: AsyncSession, community_id: uuid.UUID, data: ContactPolicyUpdate, now: datetime
) -> Limits:
    values = {
        "weekly_max": data.weekly_max,
        "weekly_max_promotions": data.weekly_max_promotions,
        "quiet_start": data.quiet_hours.start if data.quiet_hours else None,
        "quiet_end": data.quiet_hours.end if data.quiet_hours else None,
        "updated_at": now,
    }
    stmt = postgresql.insert(POLICIES).values(community_id=community_id, **values)
    await session.execute(stmt.on_conflict_do_update(index_elements=[POLICIES.c.community_id], set_=values))
    return await load_limits(session, community_id)


@dataclass(frozen=True)
class Usage:
    total: int
    promotions: int
    oldest: datetime | None  # of the counted touches
    oldest_promotion: datetime | None


def _usage_query(member_id: uuid.UUID, now: datetime) -> sa.Select[int, int, Any, Any]:
    promotion = PERMITS.c.kind == "promotion"
    return sa.select(
        sa.func.count().label("total"),
        sa.func.count().filter(promotion).label("promotions"),
        sa.func.min(PERMITS.c.granted_at).label("oldest"),
        sa.func.min(PERMITS.c.granted_at).filter(promotion).label("oldest_promotion"),
    ).where(PERMITS.c.member_id == member_id, PERMITS.c.granted_at > now - WINDOW)


async def usage(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> Usage:
    row = (await session.execute(_usage_query(member_id, now))).one()
    return Usage(int(row.total), int(row.promotions), row.oldest, row.oldest_promotion)


def _usage(row: asyncpg.Record) -> Usage:
    return Usage(int(row["total"]), int(row["promotions"]), row["oldest"], row["oldest_promotion"])


def _remaining(limits: Limits, used: Usage) -> Remaining:
    week = max(0, limits.weekly_max - used.total)
    return Remaining(week=week, promotions=min(week, max(0, limits.weekly_max_promotions - used.promotions)))


def _refused_until(limits: Limits, used: Usage, promotion: bool) -> datetime | None:
    """When the window frees a touch again (None if it has room)."""
    if used.total >= limits.weekly_max:
        return used.oldest + WINDOW if used.oldest else None
    if promotion and used.promotions >= limits.weekly_max_promotions:
        return used.oldest_promotion + WINDOW if used.oldest_promotion else None
    return None


def _limits_from(row: asyncpg.Record) -> Limits:
    """`load_limits`'s answer from the raw pool's one-row read (see repository)."""
    publishing = quiet_hours_of(row["publishing_set"], row["publishing_quiet_start"], row["publishing_quiet_end"])
    if row["weekly_max"] is None:
        return Limits(DEFAULT_WEEKLY_MAX, DEFAULT_WEEKLY_MAX_PROMOTIONS, publishing, True, True)
    if row["quiet_start"] is not None:
        own = QuietHours(row["quiet_start"], row["quiet_end"])
        return Limits(row["weekly_max"], row["weekly_max_promotions"], own, False, False)
    return Limits(row["weekly_max"], row["weekly_max_promotions"], publishing, True, False)


async def grant(
    db: Database,
    member_id: uuid.UUID,
    community_id: uuid.UUID,
    kind: str,
    requested_by: str,
    zone: ZoneInfo,
    now: datetime,
) -> PermitRead:
    """Grant a touch or raise `ContactRefused`; a reply is always granted and never counted.

    One statement of its own on the raw pool, no request transaction: `content_ask_permit`
    reads the limits, the consent and decides quiet hours as `load_limits`, `marketing_consent`
    and `QuietHours.contains` do here (tests/content/test_contact.py holds them to it), then
    grants. A reply reads the limits and the usage as committed."""
    if kind == "reply":
        limits = _limits_from(await repository.limits_row(db, community_id))
        used = _usage(await repository.usage_row(db, member_id, now - WINDOW))
        return PermitRead(granted=True, permit_id=None, remaining=_remaining(limits, used))
    promotion = kind == "promotion"
    permit_id = new_id()
    row = await repository.ask_permit(
        db, permit_id, member_id, community_id, kind, requested_by, now, now.astimezone(zone).time(), WINDOW, _DEFAULTS
    )
    quiet = QuietHours(row["quiet_start"], row["quiet_end"]) if row["quiet_start"] is not None else None
    limits = Limits(row["weekly_max"], row["weekly_max_promotions"], quiet, row["quiet_inherited"], row["is_default"])
    if row["refused"] == NoConsent.slug:
        raise NoConsent("The member has not agreed to receive promotions.")
    if row["refused"] == QuietHoursRefused.slug:
        assert limits.quiet is not None
        retry_at = limits.quiet.end_after(now, zone)
        raise QuietHoursRefused(
            f"It is quiet time in the community ({zone.key}); retry at {rfc3339(retry_at)}.",
            retry_at=rfc3339(retry_at),
        )
    used = _usage(row)
    if not row["granted"]:
        refused_until = _refused_until(limits, used, promotion)
        what = "promotions" if promotion and used.total < limits.weekly_max else "touches"
        raise BudgetExhausted(
            f"The member has had their {what} for this week"
            + (f"; retry at {rfc3339(refused_until)}." if refused_until else "."),
            retry_at=rfc3339(refused_until) if refused_until else None,
        )
    after = Usage(used.total + 1, used.promotions + int(promotion), used.oldest or now, used.oldest_promotion)
    return PermitRead(granted=True, permit_id=permit_id, remaining=_remaining(limits, after))


async def budget(
    session: AsyncSession, member_id: uuid.UUID, community_id: uuid.UUID | None, zone: ZoneInfo | None, now: datetime
) -> ContactBudgetRead:
    limits = await load_limits(session, community_id)
    used = await usage(session, member_id, now)
    next_at = _refused_until(limits, used, promotion=False)
    if (
        next_at is None
        and limits.quiet is not None
        and zone is not None
        and limits.quiet.contains(now.astimezone(zone).time())
    ):
        next_at = limits.quiet.end_after(now, zone)
    return ContactBudgetRead(
        member_id=member_id,
        week_used=used.total,
        weekly_max=limits.weekly_max,
        promotions_used=used.promotions,
        weekly_max_promotions=limits.weekly_max_promotions,
        next_allowed_at=next_at,
    )
