"""Segments: a saved rule, turned into one SQL query over members when evaluated."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import table_of, utcnow
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import NotFound
from services.members.profiles.models import Member, MemberTag
from services.members.profiles.service import in_community, inactive_since, page_of_members
from services.members.segments.models import Segment
from services.members.segments.schemas import SegmentCreate, SegmentRule, SegmentUpdate

segments = table_of(Segment)
members = table_of(Member)
member_tags = table_of(MemberTag)


class SegmentNotFound(NotFound):
    slug, title = "segment-not-found", "Segment not found"


def _stored(rule: SegmentRule) -> dict[str, Any]:
    return rule.model_dump(mode="json", exclude_none=True)


async def create_segment(session: AsyncSession, data: SegmentCreate) -> Segment:
    segment = Segment(name=data.name, description=data.description, rule=_stored(data.rule))
    session.add(segment)
    await session.flush()
    return segment


async def get_segment(session: AsyncSession, segment_id: uuid.UUID) -> Segment:
    segment = (await session.execute(sa.select(Segment).where(segments.c.id == segment_id))).scalar_one_or_none()
    if segment is None:
        raise SegmentNotFound("No such segment.")
    return segment


async def list_segments(session: AsyncSession, page: PageParams) -> tuple[list[Segment], str | None]:
    order = (segments.c.created_at, segments.c.id)
    query = sa.select(Segment).order_by(*(c.desc() for c in order)).limit(page.limit + 1)
    after = keyset_after(order, page.cursor, descending=True)
    if after is not None:
        query = query.where(after)
    rows = list((await session.execute(query)).scalars())
    return paginate_rows(rows, page.limit, lambda s: (s.created_at.isoformat(), str(s.id)))


async def update_segment(session: AsyncSession, segment_id: uuid.UUID, data: SegmentUpdate) -> Segment:
    segment = await get_segment(session, segment_id)
    changes = data.model_dump(exclude_unset=True)
    if "rule" in changes and data.rule is not None:
        changes["rule"] = _stored(data.rule)
    for field, value in changes.items():
        setattr(segment, field, value)
    if changes:
        segment.updated_at = utcnow()
        await session.flush()
    return segment


async def delete_segment(session: AsyncSession, segment_id: uuid.UUID) -> None:
    deleted = await session.execute(segments.delete().where(segments.c.id == segment_id).returning(segments.c.id))
    if deleted.scalar_one_or_none() is None:
        raise SegmentNotFound("No such segment.")


def rule_conditions(rule: SegmentRule) -> list[sa.ColumnElement[bool]]:
    """The WHERE clauses of a rule (all must hold), correlated to `members`."""
    conditions: list[sa.ColumnElement[bool]] = []
    if rule.tags and rule.tags.any:
        conditions.append(
            sa.exists().where(member_tags.c.member_id == members.c.id, member_tags.c.tag.in_(rule.tags.any))
        )
    if rule.tags and rule.tags.all:
        wanted = sorted(set(rule.tags.all))
        held = (
            sa.select(sa.func.count())
            .select_from(member_tags)
            .where(member_tags.c.member_id == members.c.id, member_tags.c.tag.in_(wanted))
            .scalar_subquery()
        )
        conditions.append(held == len(wanted))
    if rule.attributes:
        conditions.append(attributes_equal(rule.attributes))
    if rule.community_ids:
        conditions.append(in_community(rule.community_ids))
    if rule.joined_after is not None:
        conditions.append(members.c.joined_at >= rule.joined_after)
    if rule.joined_before is not None:
        conditions.append(members.c.joined_at < rule.joined_before)
    if rule.inactive_days is not None:
        conditions.append(inactive_since(rule.inactive_days))
    return conditions


def attributes_equal(wanted: dict[str, Any]) -> sa.ColumnElement[bool]:
    """Each attribute equals its value, JSON type included (`"1"` is not `1`, `true` is not `1`):
    JSONB containment (`@>`) of the wanted object."""
    return members.c.attributes.contains(wanted)


async def segment_members(
    session: AsyncSession, segment_id: uuid.UUID, page: PageParams
) -> tuple[list[Member], str | None]:
    """One page of the live members matching the segment's rule: one query."""
    segment = await get_segment(session, segment_id)
    rule = SegmentRule.model_validate(segment.rule)
    return await page_of_members(session, rule_conditions(rule), page)
