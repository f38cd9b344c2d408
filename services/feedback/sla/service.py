"""SLA policies, business hours, and the due times they give a ticket."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import table_of
from services.feedback.sla.calendar import (
    Calendar,
    add_business_minutes,
    business_minutes_between,
    wall_minutes_between,
)
from services.feedback.sla.models import BusinessHours, SlaPolicy
from services.feedback.sla.schemas import BusinessHoursBody, SlaPolicies, SlaPolicyItem

POLICIES = table_of(SlaPolicy)
HOURS = table_of(BusinessHours)

# (first response, resolution) in minutes, around the clock, until an operator says otherwise.
DEFAULT_POLICIES: dict[str, tuple[int, int]] = {
    "urgent": (30, 240),
    "high": (60, 480),
    "normal": (240, 1440),
    "low": (480, 4320),
}
PRIORITY_ORDER = ("low", "normal", "high", "urgent")


async def list_policies(session: AsyncSession) -> SlaPolicies:
    stored = {row.priority: row for row in await session.execute(sa.select(POLICIES))}
    items = []
    for priority in PRIORITY_ORDER:
        row = stored.get(priority)
        if row is None:
            first, resolution = DEFAULT_POLICIES[priority]
            items.append(SlaPolicyItem(priority=priority, first_response_minutes=first, resolution_minutes=resolution))
        else:
            items.append(
                SlaPolicyItem(
                    priority=priority,
                    first_response_minutes=row.first_response_minutes,
                    resolution_minutes=row.resolution_minutes,
                    business_hours_only=row.business_hours_only,
                )
            )
    return SlaPolicies(items=items)


async def replace_policies(session: AsyncSession, body: SlaPolicies, now: datetime) -> SlaPolicies:
    """Store the given priorities' targets (due times of open tickets are not moved)."""
    if body.items:
        insert = postgresql.insert(POLICIES)
        await session.execute(
            insert.on_conflict_do_update(
                index_elements=[POLICIES.c.priority],
                set_={
                    c: insert.excluded[c]
                    for c in ("first_response_minutes", "resolution_minutes", "business_hours_only", "updated_at")
                },
            ),
            [item.model_dump() | {"updated_at": now} for item in body.items],
        )
    return await list_policies(session)


async def policy_for(session: AsyncSession, priority: str) -> SlaPolicyItem:
    return next(item for item in (await list_policies(session)).items if item.priority == priority)


async def get_business_hours(session: AsyncSession, community_id: uuid.UUID) -> BusinessHoursBody | None:
    row = (await session.execute(sa.select(HOURS).where(HOURS.c.community_id == community_id))).first()
    if row is None:
        return None
    return BusinessHoursBody(timezone=row.timezone, days=list(row.days), start=row.start, end=row.end)


async def put_business_hours(
    session: AsyncSession, community_id: uuid.UUID, body: BusinessHoursBody, now: datetime
) -> BusinessHoursBody:
    insert = postgresql.insert(HOURS)
    values = body.model_dump() | {"community_id": community_id, "updated_at": now}
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[HOURS.c.community_id],
            set_={c: insert.excluded[c] for c in ("timezone", "days", "start", "end", "updated_at")},
        ),
        [values],
    )
    return body


@dataclass(frozen=True)
class Clock:
    """How a ticket's SLA time is counted: around the clock, or on a community's calendar."""

    calendar: Calendar | None

    def add(self, start: datetime, minutes: int) -> datetime:
        if self.calendar is None:
            return start + timedelta(minutes=minutes)
        return add_business_minutes(self.calendar, start, minutes)

    def minutes_between(self, start: datetime, end: datetime) -> int:
        if self.calendar is None:
            return wall_minutes_between(start, end)
        return business_minutes_between(self.calendar, start, end)


async def clock_for(session: AsyncSession, community_id: uuid.UUID | None, business_hours_only: bool) -> Clock:
    """Business hours only when the policy asks and the community has them; else 24/7."""
    if not business_hours_only or community_id is None:
        return Clock(None)
    hours = await get_business_hours(session, community_id)
    if hours is None:
        return Clock(None)
    return Clock(Calendar(hours.timezone, frozenset(hours.days), hours.start, hours.end))


@dataclass(frozen=True)
class DueTimes:
    first_response_due_at: datetime
    resolution_due_at: datetime
    business_hours_only: bool


def due_times_with(
    policy: SlaPolicyItem, calendar: Calendar | None, *, first_response_from: datetime, resolution_from: datetime
) -> DueTimes:
    """The due times under this policy, on this calendar when the policy counts business hours only
    (the community's calendar, None if it has none: then 24/7)."""
    clock = Clock(calendar if policy.business_hours_only else None)
    return DueTimes(
        clock.add(first_response_from, policy.first_response_minutes),
        clock.add(resolution_from, policy.resolution_minutes),
        policy.business_hours_only,
    )


async def due_times(
    session: AsyncSession,
    priority: str,
    community_id: uuid.UUID | None,
    *,
    first_response_from: datetime,
    resolution_from: datetime,
) -> DueTimes:
    policy = await policy_for(session, priority)
    clock = await clock_for(session, community_id, policy.business_hours_only)
    return due_times_with(
        policy, clock.calendar, first_response_from=first_response_from, resolution_from=resolution_from
    )
