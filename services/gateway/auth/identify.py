"""Who is calling the gateway: resolves `Authorization: Bearer` / `X-API-Key` to an Identity.

Runs on every proxied request, so it stays off the database: a JWT costs one HMAC check
plus a cached look at the staff account (disabled? token version? current roles?) or at the
member's token version; an API key costs a SHA-256 plus a cached primary-key read. Caches
live on `app.state.auth`.
"""

from __future__ import annotations

import dataclasses
import time
import uuid

from fastapi import FastAPI, Request
from sqlalchemy.ext.asyncio import AsyncEngine

from services.common.db import utcnow
from services.common.identity import Identity
from services.common.problems import Unauthorized
from services.common.settings import Settings
from services.gateway.auth.api_keys import (
    load_api_key_state,
    needs_touch,
    parse_api_key,
    secret_matches,
    touch_api_key,
)
from services.gateway.auth.member_tokens import load_token_version
from services.gateway.auth.staff import load_staff_state
from services.gateway.auth.state import auth_state
from services.gateway.auth.tokens import LEEWAY_SECONDS, InvalidToken, decode_access_token

API_KEY_HEADER = "x-api-key"
_MEMO = "gateway_identity"  # request.state attribute: identify once per request


class InvalidApiKey(Unauthorized):
    slug, title = "invalid-api-key", "Invalid API key"

    def __init__(self) -> None:
        challenge = {"WWW-Authenticate": 'ApiKey header="X-API-Key"'}
        super().__init__("The API key is invalid or revoked.", headers=challenge)


async def identify_caller(request: Request) -> Identity | None:
    """None for an anonymous request; raises Unauthorized (401) for bad credentials."""
    memo: Identity | None = getattr(request.state, _MEMO, None)
    if memo is not None:
        return memo
    authorization = request.headers.get("authorization")
    api_key = request.headers.get(API_KEY_HEADER)
    if authorization is not None and api_key is not None:
        raise Unauthorized("Send either a bearer token or an API key, not both.")
    identity: Identity | None = None
    if authorization is not None:
        scheme, _, token = authorization.partition(" ")
        if scheme.lower() != "bearer" or not token.strip():
            raise InvalidToken("Use `Authorization: Bearer <access token>`.")
        identity = await identity_from_token(request.app, token.strip())
    elif api_key is not None:
        identity = await identity_from_api_key(request.app, api_key.strip())
    if identity is not None:
        setattr(request.state, _MEMO, identity)
    return identity


async def identity_from_token(app: FastAPI, token: str) -> Identity:
    state = auth_state(app)
    hit, cached = state.tokens.get(token)
    if hit and cached is not None and cached.expires_at + LEEWAY_SECONDS > time.time():
        claims = cached
    else:
        settings: Settings = app.state.settings
        claims = decode_access_token(token, settings)
        state.tokens.put(token, claims)
    engine: AsyncEngine = app.state.db.engine
    if claims.kind == "member":
        member_id = uuid.UUID(claims.subject)
        version = await state.member_versions.get_or_load(member_id, lambda: load_token_version(engine, member_id))
        if version != claims.version:
            raise InvalidToken("The access token was revoked.")
        return Identity(kind="member", id=str(member_id), roles=("member",), member_id=member_id)
    staff_id = uuid.UUID(claims.subject)
    staff = await state.staff.get_or_load(staff_id, lambda: load_staff_state(engine, staff_id))
    if staff is None or staff.disabled or staff.token_version != claims.version:
        raise InvalidToken("The access token was revoked.")
    # Roles come from the account, not the token: a change applies within the cache period.
    return Identity(kind="staff", id=str(staff_id), roles=staff.roles)


async def identity_from_api_key(app: FastAPI, key: str) -> Identity:
    parsed = parse_api_key(key)
    if parsed is None:
        raise InvalidApiKey()
    key_id, secret = parsed
    engine: AsyncEngine = app.state.db.engine
    cache = auth_state(app).api_keys
    state = await cache.get_or_load(key_id, lambda: load_api_key_state(engine, key_id))
    if state is None or state.revoked or not secret_matches(state, secret):
        raise InvalidApiKey()
    if needs_touch(state):
        # Update the cache first so concurrent requests with this key do not all write.
        cache.put(key_id, dataclasses.replace(state, last_used_at=utcnow()))
        await touch_api_key(engine, key_id)
    return Identity(kind="partner", id=str(key_id), scopes=state.scopes)
