"""Staff accounts: create, read, list, change (roles, password, disabled)."""

from __future__ import annotations

import uuid
from typing import Any

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from services.common.db import new_id, utcnow
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound
from services.gateway.auth.models import StaffAccount
from services.gateway.auth.passwords import hash_password
from services.gateway.auth.schemas import StaffCreate, StaffUpdate
from services.gateway.auth.sessions import revoke_staff_sessions
from services.gateway.auth.state import StaffState


class EmailTaken(Conflict):
    slug, title = "email-taken", "Email already in use"


class LastAdmin(Conflict):
    slug, title = "last-admin", "The last admin must stay"


class StaffNotFound(NotFound):
    slug, title = "staff-not-found", "Staff account not found"


async def create_staff(
    session: AsyncSession,
    data: StaffCreate,
    *,
    staff_id: uuid.UUID | None = None,
    password_hash: str | None = None,
) -> StaffAccount:
    """A new staff account; 409 if the email (case-insensitive) is taken.

    `staff_id` and `password_hash` let imports (and tests) bring an id and a hash made elsewhere.
    """
    taken = await session.scalar(sa.select(col(StaffAccount.id)).where(col(StaffAccount.email) == data.email))
    if taken is not None:
        raise EmailTaken(f"A staff account with the email {data.email} exists already.")
    staff = StaffAccount(
        id=staff_id or new_id(),
        email=data.email,
        display_name=data.display_name,
        roles=data.roles,
        password_hash=password_hash or await hash_password(data.password),
    )
    session.add(staff)
    try:
        await session.flush()
    except IntegrityError as exc:  # a concurrent insert took the email between our check and here
        raise EmailTaken(f"A staff account with the email {data.email} exists already.") from exc
    return staff


async def get_staff(session: AsyncSession, staff_id: uuid.UUID, *, for_update: bool = False) -> StaffAccount:
    statement = sa.select(StaffAccount).where(col(StaffAccount.id) == staff_id)
    if for_update:
        statement = statement.with_for_update()
    staff = (await session.execute(statement)).scalar_one_or_none()
    if staff is None:
        raise StaffNotFound(f"No staff account {staff_id}.")
    return staff


async def list_staff(
    session: AsyncSession, page: PageParams, *, disabled: bool | None = None, role: str | None = None
) -> tuple[list[StaffAccount], str | None]:
    """Staff accounts, oldest first, one keyset page at a time."""
    order: tuple[sa.ColumnElement[Any], ...] = (col(StaffAccount.created_at), col(StaffAccount.id))  # type: ignore[assignment]
    statement = sa.select(StaffAccount).order_by(*order).limit(page.limit + 1)
    after = keyset_after(order, page.cursor)
    if after is not None:
        statement = statement.where(after)
    if disabled is not None:
        statement = statement.where(col(StaffAccount.disabled) == disabled)
    if role is not None:
        statement = statement.where(_has_role(role))
    rows = (await session.execute(statement)).scalars().all()
    return paginate_rows(rows, page.limit, lambda s: (s.created_at, s.id))


def _has_role(role: str) -> sa.ColumnElement[bool]:
    # Roles are a JSON list of known words; its text holds `"role"` exactly when the list does
    # (the column is `json`, not `jsonb`: no containment operator without a cast).
    return sa.cast(col(StaffAccount.roles), sa.Text).like(f'%"{role}"%')


async def _lock_active_admins(session: AsyncSession) -> set[uuid.UUID]:
    """Lock every active admin row, always in id order, so two admins demoting each other at
    once queue up instead of deadlocking, and the second sees the first one's change."""
    rows = await session.execute(
        sa.select(col(StaffAccount.id))
        .where(col(StaffAccount.disabled).is_(False), _has_role("admin"))
        .order_by(col(StaffAccount.id))
        .with_for_update()
    )
    return set(rows.scalars().all())


async def update_staff(session: AsyncSession, staff_id: uuid.UUID, changes: StaffUpdate) -> StaffAccount:
    """Apply a PATCH. Disabling or a new password ends the account's sessions and tokens;
    the last active admin cannot be demoted or disabled."""
    fields = changes.model_fields_set
    may_drop_admin = ("roles" in fields and "admin" not in (changes.roles or [])) or changes.disabled is True
    active_admins = await _lock_active_admins(session) if may_drop_admin else set()
    staff = await get_staff(session, staff_id, for_update=True)
    if changes.display_name is not None:
        staff.display_name = changes.display_name
    if changes.roles is not None:
        staff.roles = changes.roles
    end_sessions: str | None = None
    if changes.disabled is not None and changes.disabled != staff.disabled:
        staff.disabled = changes.disabled
        if changes.disabled:
            end_sessions = "disabled"
    if changes.password is not None:
        staff.password_hash = await hash_password(changes.password)
        end_sessions = end_sessions or "password_changed"
    still_admin = "admin" in staff.roles and not staff.disabled
    if staff.id in active_admins and not still_admin and not active_admins - {staff.id}:
        raise LastAdmin("This is the last active admin: make another account admin first.")
    if end_sessions:
        staff.token_version += 1  # access tokens carry the version they were issued with
        await revoke_staff_sessions(session, staff.id, end_sessions)
    staff.updated_at = utcnow()
    await session.flush()
    return staff


async def load_staff_state(engine: AsyncEngine, staff_id: uuid.UUID) -> StaffState | None:
    """The hot-path view of one account (a primary-key read), for the per-request cache."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(col(StaffAccount.roles), col(StaffAccount.disabled), col(StaffAccount.token_version)).where(
                    col(StaffAccount.id) == staff_id
                )
            )
        ).first()
    if row is None:
        return None
    return StaffState(id=staff_id, roles=tuple(row.roles), disabled=row.disabled, token_version=row.token_version)
