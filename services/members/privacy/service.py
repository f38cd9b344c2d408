"""Erasure, export and id resolution.

Erasure pseudonymizes: the member row stays (so counts, rollups and analytics survive)
but everything personal goes: contact details and their blind indexes, name, external id
(free for reuse), tags, attributes, consent, and the properties of their activity, in the
activity table and in the outbox copies of `activity.recorded`. Afterwards the member is
404 to every reader, export included.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.members import MemberCreated, MemberErased, MemberUpdated
from services.common.db import table_of, utcnow
from services.common.events import emit
from services.common.events.outbox import outbox_of
from services.members.activity.models import Activity
from services.members.crypto import PersonalDataVault
from services.members.memberships.models import Membership
from services.members.privacy.schemas import ActivityExport, MemberExport, MemberReference, MembershipExport
from services.members.profiles.models import Member, MemberTag
from services.members.profiles.service import MemberNotFound, get_member, member_read

members = table_of(Member)
member_tags = table_of(MemberTag)
memberships = table_of(Membership)
activities = table_of(Activity)

ERASED_NAME = "Erased member"


async def erase_member(session: AsyncSession, member_id: uuid.UUID) -> datetime:
    await get_member(session, member_id, for_update=True)
    now = utcnow()
    await session.execute(
        members.update()
        .where(members.c.id == member_id)
        .values(
            external_id=None,
            display_name=ERASED_NAME,
            email_cipher=None,
            email_index=None,
            phone_cipher=None,
            phone_index=None,
            tags=[],
            attributes={},
            consent_marketing=False,
            consent_updated_at=now,
            updated_at=now,
            erased_at=now,
        )
    )
    await session.execute(member_tags.delete().where(member_tags.c.member_id == member_id))
    await session.execute(activities.update().where(activities.c.member_id == member_id).values(properties=None))
    await session.execute(
        memberships.update()
        .where(memberships.c.member_id == member_id, memberships.c.left_at.is_(None))
        .values(left_at=now)
    )
    await _scrub_outbox(session, member_id)
    await emit(session, MemberErased(member_id=member_id, erased_at=now))
    return now


_SCRUBBED = (ActivityRecorded.event_type, MemberCreated.event_type, MemberUpdated.event_type)


async def _scrub_outbox(session: AsyncSession, member_id: uuid.UUID) -> None:
    """Past events keep their ids but lose properties and the external id (a rare, set-based pass)."""
    outbox = outbox_of(session).tables.outbox
    rows = (
        await session.execute(
            sa.select(outbox.c.id, outbox.c.type, outbox.c.data).where(
                outbox.c.type.in_(_SCRUBBED),
                outbox.c.data["member_id"].as_string() == str(member_id),
            )
        )
    ).all()
    scrubbed = []
    for row in rows:
        data = dict(row.data)
        # What remains still honours the contracts (consumers may read these events later).
        if row.type == ActivityRecorded.event_type:
            data["properties"] = {}
        else:
            data["external_id"] = None
            if row.type == MemberCreated.event_type:
                data["tags"] = []
        scrubbed.append({"event_id": row.id, "data": data})
    scrubbed += await _scrubbed_batches(session, outbox, member_id)
    if scrubbed:
        await session.execute(
            outbox.update().where(outbox.c.id == sa.bindparam("event_id")).values(data=sa.bindparam("data")),
            scrubbed,
        )


async def _scrubbed_batches(session: AsyncSession, outbox: sa.Table, member_id: uuid.UUID) -> list[dict[str, Any]]:
    """Batch rows of `activity.recorded` (batch ingest) with the member's events, each such
    event's properties emptied. A batch row holds many members' events: the rows are locked
    (in id order) before they are read, so two erasures touching one row take turns and the
    second rewrites the first's result, never the row as it was before it."""
    mentions = [{"data": {"member_id": str(member_id)}}]
    rows = (
        await session.execute(
            sa.select(outbox.c.id, outbox.c.data)
            .where(
                outbox.c.batch_size.is_not(None),
                outbox.c.type == ActivityRecorded.event_type,
                sa.cast(outbox.c.data, postgresql.JSONB).contains(mentions),
            )
            .order_by(outbox.c.id)
            .with_for_update()
        )
    ).all()
    scrubbed = []
    for row in rows:
        events = [
            {**event, "data": {**event["data"], "properties": {}}}
            if event["data"].get("member_id") == str(member_id)
            else event
            for event in row.data
        ]
        scrubbed.append({"event_id": row.id, "data": events})
    return scrubbed


async def export_member(session: AsyncSession, vault: PersonalDataVault, member_id: uuid.UUID) -> MemberExport:
    member = await get_member(session, member_id)
    joined = await session.execute(
        sa.select(memberships.c.community_id, memberships.c.joined_at, memberships.c.left_at)
        .where(memberships.c.member_id == member_id)
        .order_by(memberships.c.joined_at)
    )
    done = await session.execute(
        sa.select(
            activities.c.id,
            activities.c.community_id,
            activities.c.type,
            activities.c.occurred_at,
            activities.c.local_date,
            activities.c.properties,
        )
        .where(activities.c.member_id == member_id)
        .order_by(activities.c.occurred_at, activities.c.id)
    )
    return MemberExport(
        exported_at=utcnow(),
        profile=member_read(member, vault),
        memberships=[MembershipExport.model_validate(row, from_attributes=True) for row in joined],
        activity=[ActivityExport.model_validate(row, from_attributes=True) for row in done],
    )


async def resolve_member(
    session: AsyncSession, member_id: uuid.UUID | None, external_id: str | None
) -> MemberReference:
    """A live member by id or by external id."""
    condition = members.c.id == member_id if member_id is not None else members.c.external_id == external_id
    row = (
        await session.execute(
            sa.select(members.c.id, members.c.external_id).where(condition, members.c.erased_at.is_(None))
        )
    ).one_or_none()
    if row is None:
        raise MemberNotFound("No such member.")
    return MemberReference(id=row.id, external_id=row.external_id)
