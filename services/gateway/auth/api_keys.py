"""Partner API keys: `qy_live_<key id>_<secret>`, stored as the SHA-256 of the secret.

The id part makes the lookup a primary-key read; the secret part (256 random bits) is
compared by hash in constant time. The full key is shown once, at creation.
"""

from __future__ import annotations

import hmac
import re
import uuid
from datetime import timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession
from sqlmodel import col

from services.common.db import utcnow
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import NotFound
from services.gateway.auth.models import ApiKey
from services.gateway.auth.schemas import ApiKeyCreate, ApiKeyCreated, ApiKeyRead
from services.gateway.auth.state import ApiKeyState
from services.gateway.auth.tokens import new_secret, sha256_hex

KEY_PREFIX = "qy_live_"
_KEY = re.compile(r"^qy_live_([0-9a-f]{32})_([A-Za-z0-9_-]{43})$")
LAST_USED_RESOLUTION = timedelta(minutes=1)  # write last_used_at at most this often per key


class ApiKeyNotFound(NotFound):
    slug, title = "api-key-not-found", "API key not found"


def public_prefix(key_id: uuid.UUID) -> str:
    return f"{KEY_PREFIX}{key_id.hex}"


def parse_api_key(key: str) -> tuple[uuid.UUID, str] | None:
    """(key id, secret) of a well-formed key, else None."""
    match = _KEY.match(key)
    if match is None:
        return None
    return uuid.UUID(match.group(1)), match.group(2)


def secret_matches(state: ApiKeyState, secret: str) -> bool:
    return hmac.compare_digest(state.secret_hash, sha256_hex(secret))


def to_read(key: ApiKey) -> ApiKeyRead:
    return ApiKeyRead(
        id=key.id,
        name=key.name,
        scopes=key.scopes,
        prefix=public_prefix(key.id),
        created_at=key.created_at,
        last_used_at=key.last_used_at,
    )


async def create_api_key(session: AsyncSession, data: ApiKeyCreate, *, created_by: uuid.UUID | None) -> ApiKeyCreated:
    """A new key; the answer is the only place its secret ever appears."""
    secret = new_secret()
    key = ApiKey(name=data.name, scopes=data.scopes, secret_hash=sha256_hex(secret), created_by=created_by)
    session.add(key)
    await session.flush()
    return ApiKeyCreated(**to_read(key).model_dump(), key=f"{public_prefix(key.id)}_{secret}")


async def list_api_keys(session: AsyncSession, page: PageParams) -> tuple[list[ApiKeyRead], str | None]:
    """Active keys, oldest first (no secrets, no hashes)."""
    order: tuple[sa.ColumnElement[Any], ...] = (col(ApiKey.created_at), col(ApiKey.id))  # type: ignore[assignment]
    statement = sa.select(ApiKey).where(col(ApiKey.revoked_at).is_(None)).order_by(*order).limit(page.limit + 1)
    after = keyset_after(order, page.cursor)
    if after is not None:
        statement = statement.where(after)
    rows = (await session.execute(statement)).scalars().all()
    items, cursor = paginate_rows(rows, page.limit, lambda k: (k.created_at, k.id))
    return [to_read(k) for k in items], cursor


async def revoke_api_key(session: AsyncSession, key_id: uuid.UUID) -> None:
    """Revoke a key (404 if unknown or revoked already); it answers 401 from then on."""
    revoked = await session.execute(
        sa.update(ApiKey)
        .where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None))
        .values(revoked_at=utcnow())
        .returning(col(ApiKey.id))
        .execution_options(synchronize_session=False)
    )
    if revoked.scalar_one_or_none() is None:
        raise ApiKeyNotFound(f"No active API key {key_id}.")


async def load_api_key_state(engine: AsyncEngine, key_id: uuid.UUID) -> ApiKeyState | None:
    """The hot-path view of one key (a primary-key read), for the cache."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    col(ApiKey.secret_hash), col(ApiKey.scopes), col(ApiKey.revoked_at), col(ApiKey.last_used_at)
                ).where(col(ApiKey.id) == key_id)
            )
        ).first()
    if row is None:
        return None
    return ApiKeyState(
        id=key_id,
        secret_hash=row.secret_hash,
        scopes=tuple(row.scopes),
        revoked=row.revoked_at is not None,
        last_used_at=row.last_used_at,
    )


def needs_touch(state: ApiKeyState) -> bool:
    return state.last_used_at is None or utcnow() - state.last_used_at >= LAST_USED_RESOLUTION


async def touch_api_key(engine: AsyncEngine, key_id: uuid.UUID) -> None:
    """Record that the key was used. Runs at most once a minute per key and replica: its own
    tiny transaction, outside any request's, because the hot path has no session."""
    now = utcnow()
    async with engine.begin() as conn:
        await conn.execute(
            sa.update(ApiKey).where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None)).values(last_used_at=now)
        )


async def get_api_key(session: AsyncSession, key_id: uuid.UUID) -> ApiKeyRead:
    key = (
        await session.execute(sa.select(ApiKey).where(col(ApiKey.id) == key_id, col(ApiKey.revoked_at).is_(None)))
    ).scalar_one_or_none()
    if key is None:
        raise ApiKeyNotFound(f"No active API key {key_id}.")
    return to_read(key)
