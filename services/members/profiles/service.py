"""Member profile rules: create, upsert by external id, read, change, list with filters."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.members import MarketingConsent, MemberCreated, MemberField, MemberUpdated
from services.common.db import Database, PreparedRead, table_of, utcnow
from services.common.events import emit
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound, Unprocessable
from services.members.crypto import PersonalDataVault
from services.members.memberships.models import Membership
from services.members.profiles.models import Member, MemberTag, last_active_at
from services.members.profiles.schemas import (
    ConsentRead,
    MemberCreate,
    MemberRead,
    MemberUpdate,
    MemberUpsert,
)
from services.members.validation import looks_like_phone, normalize_email, normalize_phone

members = table_of(Member)
member_tags = table_of(MemberTag)
memberships = table_of(Membership)


class MemberNotFound(NotFound):
    slug, title = "member-not-found", "Member not found"


class DuplicateExternalId(Conflict):
    slug, title = "duplicate-external-id", "External id already in use"


# ---------------------------------------------------------------- reading


def member_read(member: Member, vault: PersonalDataVault) -> MemberRead:
    """The API shape of a member, with email and phone decrypted."""
    return _member_read(member.__getattribute__, vault)


def _member_read(field: Callable[[str], Any], vault: PersonalDataVault) -> MemberRead:
    member_id = field("id")
    email, phone = field("email_cipher"), field("phone_cipher")
    return MemberRead(
        id=member_id,
        external_id=field("external_id"),
        display_name=field("display_name"),
        email=vault.decrypt(email, field="email", member_id=member_id) if email else None,
        phone=vault.decrypt(phone, field="phone", member_id=member_id) if phone else None,
        tags=list(field("tags")),
        attributes=dict(field("attributes")),
        consent=ConsentRead(marketing=field("consent_marketing"), updated_at=field("consent_updated_at")),
        joined_at=field("joined_at"),
        last_active_at=field("last_active_at"),
        created_at=field("created_at"),
        updated_at=field("updated_at"),
    )


async def get_member(session: AsyncSession, member_id: uuid.UUID, *, for_update: bool = False) -> Member:
    """A live member (erased members are gone for every reader)."""
    query = sa.select(Member).where(members.c.id == member_id, members.c.erased_at.is_(None))
    if for_update:
        query = query.with_for_update()
    member = (await session.execute(query)).scalar_one_or_none()
    if member is None:
        raise MemberNotFound("No such member.")
    return member


# The hottest read of the service (every profile view): compiled once, run through asyncpg.
_LIVE_MEMBER = PreparedRead(
    sa.select(members, last_active_at(members.c.id).label("last_active_at")).where(
        members.c.id == sa.bindparam("member_id"), members.c.erased_at.is_(None)
    )
)


async def read_member(db: Database, vault: PersonalDataVault, member_id: uuid.UUID) -> MemberRead:
    """A live member as the API shows it, as committed (the answer `member_read(get_member(...))`
    gives, on the read pool: one asyncpg statement)."""
    row = await _LIVE_MEMBER.fetch_one(db, member_id=member_id)
    if row is None:
        raise MemberNotFound("No such member.")
    return _member_read(row.__getitem__, vault)


# ---------------------------------------------------------------- writing


def _contact_values(vault: PersonalDataVault, member_id: uuid.UUID, field: str, value: str | None) -> dict[str, Any]:
    if value is None:
        return {f"{field}_cipher": None, f"{field}_index": None}
    return {
        f"{field}_cipher": vault.encrypt(value, field=field, member_id=member_id),
        f"{field}_index": vault.blind_index(field, value),
    }


async def _replace_tags(session: AsyncSession, member_id: uuid.UUID, tags: list[str], *, fresh: bool = False) -> None:
    if not fresh:
        await session.execute(member_tags.delete().where(member_tags.c.member_id == member_id))
    if tags:
        await session.execute(member_tags.insert(), [{"member_id": member_id, "tag": t} for t in tags])


async def create_member(session: AsyncSession, vault: PersonalDataVault, data: MemberCreate) -> Member:
    """Insert a member; a taken external id is 409 (the unique key decides, not a pre-check)."""
    member = await _insert_member(session, vault, data.external_id, data)
    if member is None:
        raise DuplicateExternalId(f"A member with external_id {data.external_id!r} already exists.")
    return member


async def _insert_member(
    session: AsyncSession, vault: PersonalDataVault, external_id: str, data: MemberCreate | MemberUpsert
) -> Member | None:
    """INSERT ... ON CONFLICT (external_id) DO NOTHING: None if the external id is taken."""
    if data.display_name is None:
        raise Unprocessable(
            "display_name is required to create a member.",
            errors=[{"loc": ["body", "display_name"], "msg": "Field required"}],
        )
    now = utcnow()
    member_id = uuid.uuid4()
    values: dict[str, Any] = {
        "id": member_id,
        "external_id": external_id,
        "display_name": data.display_name,
        "tags": list(data.tags or []),
        "attributes": dict(data.attributes or {}),
        "consent_marketing": data.consent.marketing if data.consent else False,
        "consent_updated_at": now if data.consent else None,
        "joined_at": data.joined_at or now,
        "created_at": now,
        "updated_at": now,
        "erased_at": None,
        **_contact_values(vault, member_id, "email", data.email),
        **_contact_values(vault, member_id, "phone", data.phone),
    }
    statement = (
        postgresql.insert(members)
        .values(values)
        .on_conflict_do_nothing(index_elements=[members.c.external_id])
        .returning(members.c.id)
    )
    if (await session.execute(statement)).scalar_one_or_none() is None:
        return None
    await _replace_tags(session, member_id, values["tags"], fresh=True)
    member = Member(**values)
    await emit(
        session,
        MemberCreated(
            member_id=member_id,
            external_id=external_id,
            tags=member.tags,
            joined_at=member.joined_at,
            consent=MarketingConsent(marketing=member.consent_marketing),
        ),
    )
    return member


async def upsert_member(
    session: AsyncSession, vault: PersonalDataVault, external_id: str, data: MemberUpsert
) -> tuple[Member, bool]:
    """Create or change the member with this external id: (member, created)."""
    existing = await _by_external_id_for_update(session, external_id)
    if existing is None:
        created = await _insert_member(session, vault, external_id, data)
        if created is not None:
            return created, True
        # Someone else created it between our read and our insert: change theirs.
        existing = await _by_external_id_for_update(session, external_id)
        if existing is None:  # pragma: no cover - erased in between; the unique key is free again
            raise Conflict("The member changed concurrently; retry the request.")
    changes = data.model_dump(exclude_unset=True)
    return await _apply_changes(session, vault, existing, changes), False


async def _by_external_id_for_update(session: AsyncSession, external_id: str) -> Member | None:
    query = sa.select(Member).where(members.c.external_id == external_id).with_for_update()
    return (await session.execute(query)).scalar_one_or_none()


async def update_member(
    session: AsyncSession, vault: PersonalDataVault, member_id: uuid.UUID, data: MemberUpdate
) -> Member:
    member = await get_member(session, member_id, for_update=True)
    changes = data.model_dump(exclude_unset=True)
    if "attributes" in changes:
        merged = {**member.attributes, **changes["attributes"]}
        changes["attributes"] = {k: v for k, v in merged.items() if v is not None}
        if len(changes["attributes"]) > 50:
            raise Unprocessable(
                "A member holds at most 50 attributes.",
                errors=[{"loc": ["body", "attributes"], "msg": "at most 50 attributes"}],
            )
    return await _apply_changes(session, vault, member, changes)


_CONTACT_FIELDS: tuple[MemberField, ...] = ("email", "phone")
_PLAIN_FIELDS: tuple[MemberField, ...] = ("external_id", "display_name", "attributes", "joined_at")


async def _apply_changes(
    session: AsyncSession, vault: PersonalDataVault, member: Member, changes: dict[str, Any]
) -> Member:
    """Set the changed fields, write the tags, emit `member.updated` if anything changed."""
    changed: list[MemberField] = []
    now = utcnow()
    for field in _CONTACT_FIELDS:
        if field not in changes:
            continue
        value = changes[field]
        new_index = vault.blind_index(field, value) if value is not None else None
        if new_index != getattr(member, f"{field}_index"):
            for name, stored in _contact_values(vault, member.id, field, value).items():
                setattr(member, name, stored)
            changed.append(field)
    if "consent" in changes:
        marketing = bool(changes["consent"]["marketing"])
        if marketing != member.consent_marketing or member.consent_updated_at is None:
            member.consent_marketing = marketing
            member.consent_updated_at = now
            changed.append("consent")
    for field in _PLAIN_FIELDS:
        if field in changes and changes[field] != getattr(member, field):
            setattr(member, field, changes[field])
            changed.append(field)
    if "tags" in changes and changes["tags"] != member.tags:
        member.tags = list(changes["tags"])
        await _replace_tags(session, member.id, member.tags)
        changed.append("tags")
    if not changed:
        return member
    member.updated_at = now
    taken = DuplicateExternalId(f"A member with external_id {member.external_id!r} already exists.")
    try:
        await session.flush()
    except sa.exc.IntegrityError as exc:
        # Only external_id is unique here; the request rolls back with this answer.
        raise taken from exc
    await emit(
        session,
        MemberUpdated(
            member_id=member.id,
            external_id=member.external_id,
            changed=sorted(changed),
            consent=MarketingConsent(marketing=member.consent_marketing),
        ),
    )
    return member


# ---------------------------------------------------------------- listing


@dataclass(frozen=True)
class MemberFilters:
    community_id: uuid.UUID | None = None
    tag: str | None = None
    q: str | None = None
    inactive_days: int | None = None


def inactive_since(days: int, now: datetime | None = None) -> sa.ColumnElement[bool]:
    """No activity in the last `days` days (never-active members count from when they joined)."""
    cutoff = (now or utcnow()) - timedelta(days=days)
    return sa.func.coalesce(last_active_at(members.c.id), members.c.joined_at) < cutoff


def in_community(community_ids: list[uuid.UUID]) -> sa.ColumnElement[bool]:
    return sa.exists().where(
        memberships.c.member_id == members.c.id,
        memberships.c.community_id.in_(community_ids),
        memberships.c.left_at.is_(None),
    )


def has_tag(tag: str) -> sa.ColumnElement[bool]:
    return sa.exists().where(member_tags.c.member_id == members.c.id, member_tags.c.tag == tag)


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def matches_text(vault: PersonalDataVault, q: str) -> sa.ColumnElement[bool]:
    """Exact email or phone (through the blind indexes), exact external id, or a name fragment."""
    options: list[sa.ColumnElement[bool]] = [
        members.c.external_id == q,
        members.c.display_name.ilike(f"%{like_escape(q)}%", escape="\\"),
    ]
    if "@" in q:
        options.append(members.c.email_index == vault.blind_index("email", normalize_email(q)))
    if looks_like_phone(q):
        options.append(members.c.phone_index == vault.blind_index("phone", normalize_phone(q)))
    return sa.or_(*options)


def filter_conditions(vault: PersonalDataVault, filters: MemberFilters) -> list[sa.ColumnElement[bool]]:
    conditions: list[sa.ColumnElement[bool]] = []
    if filters.community_id is not None:
        conditions.append(in_community([filters.community_id]))
    if filters.tag is not None:
        conditions.append(has_tag(filters.tag))
    if filters.q is not None:
        conditions.append(matches_text(vault, filters.q))
    if filters.inactive_days is not None:
        conditions.append(inactive_since(filters.inactive_days))
    return conditions


async def page_of_members(
    session: AsyncSession, conditions: list[sa.ColumnElement[bool]], page: PageParams
) -> tuple[list[Member], str | None]:
    """Live members matching all conditions, newest first, keyset on (created_at, id): one query."""
    order = (members.c.created_at, members.c.id)
    query = (
        sa.select(Member)
        .where(members.c.erased_at.is_(None), *conditions)
        .order_by(*(c.desc() for c in order))
        .limit(page.limit + 1)
    )
    after = keyset_after(order, page.cursor, descending=True)
    if after is not None:
        query = query.where(after)
    rows = list((await session.execute(query)).scalars())
    return paginate_rows(rows, page.limit, lambda m: (m.created_at.isoformat(), str(m.id)))


async def resolve_member_ids(
    session: AsyncSession, member_ids: set[uuid.UUID], external_ids: set[str]
) -> tuple[set[uuid.UUID], dict[str, uuid.UUID]]:
    """Which of these live members exist, by id and by external id: one query."""
    if not member_ids and not external_ids:
        return set(), {}
    options = []
    # One array parameter (`= ANY`) instead of an IN list of up to 1000 parameters.
    if member_ids:
        ids = sa.bindparam("member_ids", list(member_ids), type_=postgresql.ARRAY(sa.Uuid()))
        options.append(members.c.id == sa.any_(ids))
    if external_ids:
        refs = sa.bindparam("external_ids", list(external_ids), type_=postgresql.ARRAY(sa.String()))
        options.append(members.c.external_id == sa.any_(refs))
    rows = await session.execute(
        sa.select(members.c.id, members.c.external_id).where(members.c.erased_at.is_(None), sa.or_(*options))
    )
    found_ids: set[uuid.UUID] = set()
    by_external: dict[str, uuid.UUID] = {}
    for row in rows:
        found_ids.add(row.id)
        if row.external_id is not None:
            by_external[row.external_id] = row.id
    return found_ids, by_external


# How many of the given ids are live members: one number back, and when it is all of them
# (the usual batch) nothing else is asked. `= ANY` is one scan whatever the estimates (an
# anti-join from the ids could be planned as a nested loop over the members, which on a
# table without statistics compares every id with every member).
COUNT_LIVE_MEMBERS = "SELECT count(*) FROM members WHERE id = ANY($1::uuid[]) AND erased_at IS NULL"
LIVE_MEMBER_IDS = "SELECT id FROM members WHERE id = ANY($1::uuid[]) AND erased_at IS NULL"


async def unknown_member_ids(session: AsyncSession, member_ids: set[uuid.UUID]) -> set[uuid.UUID]:
    """Which of these ids are not live members (unknown or erased): one query when all are."""
    if not member_ids:
        return set()
    ids = list(member_ids)
    connection = await session.connection()
    live = (await connection.exec_driver_sql(COUNT_LIVE_MEMBERS, (ids,))).scalar_one()
    if live == len(ids):
        return set()
    found = set((await connection.exec_driver_sql(LIVE_MEMBER_IDS, (ids,))).scalars())
    return {member_id for member_id in member_ids if member_id not in found}
