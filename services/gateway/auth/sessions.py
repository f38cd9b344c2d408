"""Logins and rotating refresh tokens.

A login opens a refresh-token *family*. Each refresh spends the presented token with one
conditional UPDATE (so two concurrent refreshes of the same token cannot both win) and
issues the next token of the family. Presenting a token that was already spent means it
leaked or was replayed: the whole family is revoked, so neither party can go on with it.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.common.db import utcnow
from services.common.problems import Unauthorized
from services.common.settings import Settings
from services.gateway.auth.models import RefreshFamily, RefreshToken, StaffAccount
from services.gateway.auth.passwords import MAX_PASSWORD_LENGTH, hash_password, needs_rehash, verify_password
from services.gateway.auth.schemas import normalize_email
from services.gateway.auth.tokens import issue_access_token, new_secret, sha256_hex

REFRESH_TOKEN_PREFIX = "qy_rt_"


class InvalidCredentials(Unauthorized):
    slug, title = "invalid-credentials", "Invalid credentials"

    def __init__(self) -> None:
        super().__init__("The email or password is wrong.", error="invalid_grant")


class AccountDisabled(Unauthorized):
    slug, title = "account-disabled", "Account disabled"

    def __init__(self) -> None:
        super().__init__("This account is disabled.", error="invalid_grant")


class InvalidRefreshToken(Unauthorized):
    slug, title = "invalid-refresh-token", "Invalid refresh token"

    def __init__(self) -> None:
        super().__init__("The refresh token is invalid, expired, spent or revoked.", error="invalid_grant")


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    expires_in: int
    refresh_token: str
    refresh_expires_in: int


async def authenticate(session: AsyncSession, email: str, password: str) -> StaffAccount:
    """The staff account these credentials open; 401 otherwise. An unknown email costs as much
    time as a wrong password, so response times do not reveal which accounts exist."""
    if len(password) > MAX_PASSWORD_LENGTH:
        raise InvalidCredentials()
    staff = (
        await session.execute(sa.select(StaffAccount).where(col(StaffAccount.email) == normalize_email(email)))
    ).scalar_one_or_none()
    if not await verify_password(staff.password_hash if staff else None, password) or staff is None:
        raise InvalidCredentials()
    if staff.disabled:
        raise AccountDisabled()
    if needs_rehash(staff.password_hash):
        # The argon2 parameters changed since this hash was made: upgrade it while we know the password.
        staff.password_hash = await hash_password(password)
    staff.last_login_at = utcnow()
    return staff


def _new_refresh_token(family_id: uuid.UUID, settings: Settings) -> tuple[RefreshToken, str]:
    raw = REFRESH_TOKEN_PREFIX + new_secret()
    expires_at = utcnow() + timedelta(seconds=settings.refresh_token_ttl_seconds)
    return RefreshToken(token_hash=sha256_hex(raw), family_id=family_id, expires_at=expires_at), raw


def _pair(staff_id: uuid.UUID, token_version: int, refresh: str, settings: Settings) -> TokenPair:
    access, expires_in = issue_access_token(settings, "staff", str(staff_id), version=token_version)
    return TokenPair(access, expires_in, refresh, settings.refresh_token_ttl_seconds)


async def start_session(session: AsyncSession, staff: StaffAccount, settings: Settings) -> TokenPair:
    """A fresh access token and the first refresh token of a new family."""
    family = RefreshFamily(staff_id=staff.id)
    token, raw = _new_refresh_token(family.id, settings)
    session.add_all([family, token])
    await session.flush()
    return _pair(staff.id, staff.token_version, raw, settings)


async def revoke_family(session: AsyncSession, family_id: uuid.UUID, reason: str) -> None:
    await session.execute(
        sa.update(RefreshFamily)
        .where(col(RefreshFamily.id) == family_id, col(RefreshFamily.revoked_at).is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )


async def revoke_staff_sessions(session: AsyncSession, staff_id: uuid.UUID, reason: str) -> None:
    """End every refresh-token family of a staff account (disabled, password changed)."""
    await session.execute(
        sa.update(RefreshFamily)
        .where(col(RefreshFamily.staff_id) == staff_id, col(RefreshFamily.revoked_at).is_(None))
        .values(revoked_at=utcnow(), revoked_reason=reason)
        .execution_options(synchronize_session=False)
    )


async def rotate_refresh_token(session: AsyncSession, raw: str, settings: Settings) -> TokenPair | None:
    """Spend `raw` and return the next pair, or None if it cannot be used.

    None may come with a revocation written in this transaction (reuse of a spent token,
    a disabled account): the caller must commit it even though it answers 401.
    """
    now = utcnow()
    token_hash = sha256_hex(raw)
    live_families = sa.select(col(RefreshFamily.id)).where(col(RefreshFamily.revoked_at).is_(None))
    # The spend is one conditional UPDATE: of two concurrent refreshes, the database lets one win.
    spent = await session.execute(
        sa.update(RefreshToken)
        .where(
            col(RefreshToken.token_hash) == token_hash,
            col(RefreshToken.spent_at).is_(None),
            col(RefreshToken.expires_at) > now,
            col(RefreshToken.family_id).in_(live_families),
        )
        .values(spent_at=now)
        .returning(col(RefreshToken.family_id))
        .execution_options(synchronize_session=False)
    )
    family_id = spent.scalar_one_or_none()
    if family_id is None:
        known = (
            await session.execute(
                sa.select(col(RefreshToken.family_id), col(RefreshToken.spent_at)).where(
                    col(RefreshToken.token_hash) == token_hash
                )
            )
        ).first()
        if known is not None and known.spent_at is not None:
            await revoke_family(session, known.family_id, "reuse")
        return None
    staff = (
        await session.execute(
            sa.select(col(StaffAccount.id), col(StaffAccount.token_version), col(StaffAccount.disabled))
            .join(RefreshFamily, col(RefreshFamily.staff_id) == col(StaffAccount.id))
            .where(col(RefreshFamily.id) == family_id)
        )
    ).one()
    if staff.disabled:
        await revoke_family(session, family_id, "disabled")
        return None
    token, next_raw = _new_refresh_token(family_id, settings)
    session.add(token)
    await session.flush()
    return _pair(staff.id, staff.token_version, next_raw, settings)


async def revoke_refresh_token(session: AsyncSession, raw: str) -> None:
    """Log out: end the family of this refresh token (unknown tokens are ignored, RFC 7009)."""
    family_id = (
        await session.execute(
            sa.select(col(RefreshToken.family_id)).where(col(RefreshToken.token_hash) == sha256_hex(raw))
        )
    ).scalar_one_or_none()
    if family_id is not None:
        await revoke_family(session, family_id, "logout")
