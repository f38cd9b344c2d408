"""Member access tokens, minted for partners (and staff) after the members service vouches
that the member exists, and their revocation.

Every member token carries the member's token version (`ver`); the gateway refuses a token
whose version is not the member's current one (`identify.py`, through the same short
per-replica cache as staff versions). Erasure (`member.erased`) and
`POST /v1/members/{id}/revoke-tokens` bump the version, so every token minted before stops
working: at once on the replica that applied the change, within the cache's TTL on others.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import httpx
import sqlalchemy as sa
from sqlalchemy import event as sa_event
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

from services.common.db import table_of, utcnow
from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, Identity, sign_internal_token
from services.common.problems import Forbidden, GatewayTimeout, NotFound, ServiceUnavailable
from services.common.settings import Settings
from services.gateway.auth.cache import TTLCache
from services.gateway.auth.models import MemberTokenVersion
from services.gateway.auth.schemas import MemberTokenCreate, MemberTokenRead
from services.gateway.auth.tokens import issue_access_token

VERSIONS = table_of(MemberTokenVersion)


class MemberNotFound(NotFound):
    slug, title = "member-not-found", "Member not found"


async def resolve_member(http: httpx.AsyncClient, settings: Settings, ref: MemberTokenCreate) -> uuid.UUID:
    """The member's id, asked of the members service (`GET /internal/members/resolve`).

    Signed as the system: the gateway has already decided that the caller may mint the token.
    """
    params = {"member_id": str(ref.member_id)} if ref.member_id else {"external_id": ref.external_id or ""}
    try:
        response = await http.get(
            f"{settings.url_for('members')}/internal/members/resolve",
            params=params,
            headers={INTERNAL_TOKEN_HEADER: sign_internal_token(SYSTEM, settings)},
        )
    except httpx.TimeoutException as exc:
        raise GatewayTimeout("The members service did not answer in time.") from exc
    except httpx.TransportError as exc:
        raise ServiceUnavailable("The members service is not reachable.") from exc
    if response.status_code == 404:
        raise MemberNotFound("No such member.")
    if response.status_code != 200:
        raise ServiceUnavailable(f"The members service answered {response.status_code} to the member lookup.")
    try:
        return uuid.UUID(response.json()["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceUnavailable("The members service gave a malformed answer.") from exc


def issue_member_token(settings: Settings, member_id: uuid.UUID, version: int) -> MemberTokenRead:
    token, expires_in = issue_access_token(
        settings, "member", str(member_id), version=version, ttl_seconds=settings.member_token_ttl_seconds
    )
    return MemberTokenRead(access_token=token, expires_in=expires_in, member_id=member_id)


async def current_token_version(session: AsyncSession, member_id: uuid.UUID) -> int:
    """The version a token minted now carries (0 until the first revocation)."""
    version = (
        await session.execute(sa.select(VERSIONS.c.version).where(VERSIONS.c.member_id == member_id))
    ).scalar_one_or_none()
    return version or 0


async def load_token_version(engine: AsyncEngine, member_id: uuid.UUID) -> int:
    """The member's current version (a primary-key read), for the per-request cache."""
    async with engine.connect() as conn:
        version = (
            await conn.execute(sa.select(VERSIONS.c.version).where(VERSIONS.c.member_id == member_id))
        ).scalar_one_or_none()
    return version or 0


async def revoke_member_tokens(session: AsyncSession, member_ids: Iterable[uuid.UUID]) -> None:
    """Bump the token version of each member (one upsert): every token minted before is refused.

    Safe to repeat: each call only moves the versions further on.
    """
    ids = sorted(set(member_ids))  # one order for every writer: concurrent bumps cannot deadlock
    if not ids:
        return
    now = utcnow()
    insert = postgresql.insert(VERSIONS).values([{"member_id": i, "version": 1, "updated_at": now} for i in ids])
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[VERSIONS.c.member_id],
            set_={"version": VERSIONS.c.version + 1, "updated_at": insert.excluded.updated_at},
        )
    )


def invalidate_after_commit(
    session: AsyncSession, cache: TTLCache[uuid.UUID, int], member_ids: list[uuid.UUID]
) -> None:
    """Drop the members' cached versions now and again once this transaction commits, so a
    load racing the commit cannot keep the old version cached on this replica."""
    for member_id in member_ids:
        cache.invalidate(member_id)

    def _after_commit(_session: object) -> None:
        for member_id in member_ids:
            cache.invalidate(member_id)

    sa_event.listen(session.sync_session, "after_commit", _after_commit, once=True)


def can_revoke_member_tokens(caller: Identity, member_id: uuid.UUID) -> None:
    """Admins, and a member for itself. Another member learns nothing (404); other staff and
    partners are refused (403)."""
    if caller.kind == "member":
        if caller.member_id != member_id:
            raise MemberNotFound("No such member.")
        return
    if not caller.is_admin:
        raise Forbidden("Only an admin, or the member itself, may revoke a member's tokens.")
