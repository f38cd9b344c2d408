"""Credentials for test callers, made with the gateway's own auth functions.

`System.client(identity)` calls `credentials_for`: staff get a real staff row (same id and
roles as the identity) and a signed access token; members get a member access token;
partners get a real API key with the identity's scopes (the gateway then sees the key's
id, not the identity's). Rows are cached per System until its next reset.
"""

from __future__ import annotations

import uuid
from functools import lru_cache

from services.common.identity import Identity
from services.gateway.auth.api_keys import create_api_key
from services.gateway.auth.models import StaffAccount
from services.gateway.auth.passwords import hasher
from services.gateway.auth.schemas import ApiKeyCreate, StaffCreate
from services.gateway.auth.staff import create_staff
from services.gateway.auth.state import auth_state
from services.gateway.auth.tokens import issue_access_token
from tests.system import System

STAFF_PASSWORD = "correct horse battery staple"


@lru_cache(maxsize=1)
def staff_password_hash() -> str:
    # One argon2 hash for every test account: hashing per account would dominate the suite's time.
    return hasher.hash(STAFF_PASSWORD)


async def ensure_staff_row(system: System, identity: Identity) -> StaffAccount:
    """The staff row behind a test identity (created, or its roles brought in line)."""
    staff_id = uuid.UUID(identity.id)
    db = system.state("gateway").db
    async with db.session() as session:
        account: StaffAccount | None = await session.get(StaffAccount, staff_id)
        if account is None:
            data = StaffCreate(
                email=f"{staff_id.hex}@staff.qunyun.test",
                display_name=f"Staff {staff_id.hex[:8]}",
                password="unused-password-0",
                roles=list(identity.roles),
            )
            account = await create_staff(session, data, staff_id=staff_id, password_hash=staff_password_hash())
        elif tuple(account.roles) != identity.roles:
            account.roles = list(identity.roles)
        await db.commit(session)
    auth_state(system.apps["gateway"]).staff.invalidate(staff_id)
    return account


async def api_key_for(system: System, scopes: tuple[str, ...], name: str = "test partner") -> str:
    db = system.state("gateway").db
    # Validated like the API does, except that tests may want a key with no scope at all.
    data = (
        ApiKeyCreate(name=name, scopes=list(scopes)) if scopes else ApiKeyCreate.model_construct(name=name, scopes=[])
    )
    async with db.session() as session:
        created = await create_api_key(session, data, created_by=None)
        await db.commit(session)
    return created.key


async def credentials_for(system: System, identity: Identity) -> dict[str, str]:
    """Headers that authenticate `identity` at the gateway."""
    if identity.kind == "member":
        assert identity.member_id is not None
        token, _ = issue_access_token(
            system.settings, "member", str(identity.member_id), ttl_seconds=system.settings.member_token_ttl_seconds
        )
        return {"Authorization": f"Bearer {token}"}
    if identity.kind == "partner":
        if identity.scopes not in system._api_keys:
            system._api_keys[identity.scopes] = await api_key_for(system, identity.scopes)
        return {"X-API-Key": system._api_keys[identity.scopes]}
    if identity.kind == "staff":
        cache_key = ("\0staff", identity.id, *identity.roles)
        if cache_key not in system._api_keys:
            account = await ensure_staff_row(system, identity)
            token, _ = issue_access_token(system.settings, "staff", identity.id, version=account.token_version)
            system._api_keys[cache_key] = token
        return {"Authorization": f"Bearer {system._api_keys[cache_key]}"}
    raise ValueError(f"no gateway credentials for a {identity.kind} caller")
