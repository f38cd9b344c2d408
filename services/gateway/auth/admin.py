"""The bootstrap admin: `qunyun up`, `qunyun create-admin` and the gateway's start-up use it."""

from __future__ import annotations

import structlog
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database
from services.common.settings import Settings
from services.gateway.auth.passwords import MIN_PASSWORD_LENGTH, generate_password, warm_up
from services.gateway.auth.schemas import StaffCreate
from services.gateway.auth.staff import EmailTaken, create_staff

log = structlog.get_logger("qunyun.gateway.auth")


async def ensure_admin(session: AsyncSession, email: str, password: str | None) -> tuple[bool, str | None]:
    """Create an admin with this email unless a staff account with it exists (the caller commits).

    With no password, a strong one is generated. Returns (created, generated password or None):
    the generated password is the only copy, for the caller to show once.
    """
    if password is not None and len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"the admin password must have at least {MIN_PASSWORD_LENGTH} characters")
    generated = generate_password() if password is None else None
    data = StaffCreate(email=email, display_name="Administrator", password=password or generated, roles=["admin"])
    try:
        await create_staff(session, data)
    except EmailTaken:
        # Also when a concurrent start-up won the insert: undo our failed flush.
        await session.rollback()
        return False, None
    return True, generated


async def bootstrap_admin(db: Database, settings: Settings) -> None:
    """At gateway start-up: ensure the admin named by QUNYUN_ADMIN_EMAIL / _PASSWORD, if both are set."""
    if not settings.admin_email or settings.admin_password is None:
        return
    async with db.session() as session:
        created, _ = await ensure_admin(session, settings.admin_email, settings.admin_password.get_secret_value())
        await db.commit(session)
    if created:
        log.info("bootstrap_admin_created")


async def start_auth(app: FastAPI) -> None:
    """Gateway lifespan hook: the bootstrap admin, and the dummy hash that unknown logins verify."""
    await bootstrap_admin(app.state.db, app.state.settings)
    await warm_up()
