"""Logins and rotating refresh tokens.

A login opens a refresh-token *family*. Each refresh spends the presented token with one
conditional UPDATE (so two concurrent refreshes of the same token cannot both win), issues
the next token of the family and records it on the spent row (`successor_id`).

Presenting a token that was already spent means one of two things. Within
`QUNYUN_REFRESH_REUSE_GRACE_SECONDS` of the spend, while its successor is still unspent,
it is a benign race (two browser tabs refreshing at once, a retry after a lost answer):
the answer is that same successor with a fresh access token, as Auth0's reuse interval
does. Otherwise the token leaked or was replayed: the whole family is revoked, so neither
party can go on with it.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased
from sqlmodel import col

from services.common.db import new_id, utcnow
from services.common.problems import Unauthorized
from services.common.settings import Settings
from services.gateway.auth.models import RefreshFamily, RefreshToken, StaffAccount
from services.gateway.auth.passwords import MAX_PASSWORD_LENGTH, hash_password, needs_rehash, verify_password
from services.gateway.auth.schemas import normalize_email
from services.gateway.auth.tokens import issue_access_token, new_secret, sha256_hex

REFRESH_TOKEN_PREFIX = "qy_rt_"
_SUCCESSOR_KEY_LABEL = b"qunyun refresh-token successor v1"


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


def successor_secret(raw: str, settings: Settings) -> str:
    """The refresh token issued when `raw` is spent: an HMAC-SHA256 of `raw` under a key
    derived from the JWT signing key.

    Why derived rather than random: a duplicate refresh inside the reuse grace must answer
    with the successor's raw value, and only hashes of refresh tokens are stored. Deriving
    it from the presented token gives every concurrent duplicate the same value with no
    secret at rest (the alternative, the successor encrypted on the spent row, is a
    ciphertext to manage and to leak); the database still holds only SHA-256 hashes. Only
    the holder of `raw` and of the server key can compute it (and whoever has that key can
    sign access tokens anyway), and it carries 256 bits like a random token. A duplicate is
    still answered only while the database says the successor is `raw`'s recorded, unspent
    successor (its hash must match too).
    """
    key = hmac.new(settings.jwt_signing_key.get_secret_value().encode(), _SUCCESSOR_KEY_LABEL, hashlib.sha256)
    mac = hmac.new(key.digest(), raw.encode(), hashlib.sha256).digest()
    return REFRESH_TOKEN_PREFIX + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()


def _pair(
    staff_id: uuid.UUID, token_version: int, refresh: str, settings: Settings, refresh_expires_in: int | None = None
) -> TokenPair:
    access, expires_in = issue_access_token(settings, "staff", str(staff_id), version=token_version)
    if refresh_expires_in is None:
        refresh_expires_in = settings.refresh_token_ttl_seconds
    return TokenPair(access, expires_in, refresh, refresh_expires_in)


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

    A token spent moments ago (within the reuse grace) returns its successor instead. None
    may come with a revocation written in this transaction (reuse of a spent token, a
    disabled account): the caller must commit it even though it answers 401.
    """
    now = utcnow()
    token_hash = sha256_hex(raw)
    successor_id = new_id()
    live_families = sa.select(col(RefreshFamily.id)).where(col(RefreshFamily.revoked_at).is_(None))
    # The spend is one conditional UPDATE: of two concurrent refreshes, the database lets one
    # win; the other waits for the winner's commit (row lock), then finds the row spent and
    # its successor recorded (`_answer_reuse`).
    spent = await session.execute(
        sa.update(RefreshToken)
        .where(
            col(RefreshToken.token_hash) == token_hash,
            col(RefreshToken.spent_at).is_(None),
            col(RefreshToken.expires_at) > now,
            col(RefreshToken.family_id).in_(live_families),
        )
        .values(spent_at=now, successor_id=successor_id)
        .returning(col(RefreshToken.family_id))
        .execution_options(synchronize_session=False)
    )
    family_id = spent.scalar_one_or_none()
    if family_id is None:
        return await _answer_reuse(session, raw, token_hash, settings, now)
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
    next_raw = successor_secret(raw, settings)
    expires_at = now + timedelta(seconds=settings.refresh_token_ttl_seconds)
    session.add(
        RefreshToken(id=successor_id, token_hash=sha256_hex(next_raw), family_id=family_id, expires_at=expires_at)
    )
    await session.flush()
    return _pair(staff.id, staff.token_version, next_raw, settings)


async def _answer_reuse(
    session: AsyncSession, raw: str, token_hash: str, settings: Settings, now: datetime
) -> TokenPair | None:
    """A token that could not be spent: its successor if this is a duplicate within the
    grace, else None (revoking the family when the token had been spent: a replay)."""
    spent, successor = aliased(RefreshToken), aliased(RefreshToken)
    known: Any = (  # Row | None (the labelled columns defeat its inferred type)
        await session.execute(
            sa.select(
                col(spent.family_id),
                col(spent.spent_at),
                col(successor.token_hash).label("successor_hash"),
                col(successor.spent_at).label("successor_spent_at"),
                col(successor.expires_at).label("successor_expires_at"),
                col(RefreshFamily.revoked_at),
                col(StaffAccount.id).label("staff_id"),
                col(StaffAccount.token_version),
                col(StaffAccount.disabled),
            )
            .join(RefreshFamily, col(RefreshFamily.id) == col(spent.family_id))
            .join(StaffAccount, col(StaffAccount.id) == col(RefreshFamily.staff_id))
            .outerjoin(successor, col(successor.id) == col(spent.successor_id))
            .where(col(spent.token_hash) == token_hash)
        )
    ).first()
    if known is None or known.spent_at is None:
        return None  # unknown, expired, or of a revoked family
    grace = timedelta(seconds=settings.refresh_reuse_grace_seconds)
    if (
        known.revoked_at is None
        and not known.disabled
        and now - known.spent_at <= grace
        and known.successor_hash is not None
        and known.successor_spent_at is None  # only the immediate successor, while unspent
        and known.successor_expires_at > now
    ):
        next_raw = successor_secret(raw, settings)
        if hmac.compare_digest(sha256_hex(next_raw), known.successor_hash):
            remaining = int((known.successor_expires_at - now).total_seconds())
            return _pair(known.staff_id, known.token_version, next_raw, settings, remaining)
    await revoke_family(session, known.family_id, "reuse")
    return None


async def revoke_refresh_token(session: AsyncSession, raw: str) -> None:
    """Log out: end the family of this refresh token (unknown tokens are ignored, RFC 7009)."""
    family_id = (
        await session.execute(
            sa.select(col(RefreshToken.family_id)).where(col(RefreshToken.token_hash) == sha256_hex(raw))
        )
    ).scalar_one_or_none()
    if family_id is not None:
        await revoke_family(session, family_id, "logout")
