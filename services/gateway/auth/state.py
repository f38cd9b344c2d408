"""Per-process auth state: the caches `identify_caller` reads on every request.

Attached lazily to `app.state.auth`, so it needs nothing from the app factory but the
app itself, and two gateway apps in one process (tests) never share entries.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from fastapi import FastAPI

from services.gateway.auth.cache import TTLCache
from services.gateway.auth.tokens import AccessClaims

# How long another replica may keep honouring a disabled account, a revoked member token
# (erasure, revoke-tokens) or a revoked key.
STAFF_CACHE_SECONDS = 5.0
MEMBER_VERSION_CACHE_SECONDS = STAFF_CACHE_SECONDS
API_KEY_CACHE_SECONDS = 10.0
# Verified access tokens, so a client's next requests skip the signature check (expiry still applies).
TOKEN_CACHE_SECONDS = 60.0


@dataclass(frozen=True)
class StaffState:
    """What a request needs to know about a staff account."""

    id: uuid.UUID
    roles: tuple[str, ...]
    disabled: bool
    token_version: int


@dataclass(frozen=True)
class ApiKeyState:
    id: uuid.UUID
    secret_hash: str
    scopes: tuple[str, ...]
    revoked: bool
    last_used_at: datetime | None


class AuthState:
    def __init__(self) -> None:
        self.staff: TTLCache[uuid.UUID, StaffState | None] = TTLCache(STAFF_CACHE_SECONDS)
        # member id -> current member token version
        self.member_versions: TTLCache[uuid.UUID, int] = TTLCache(MEMBER_VERSION_CACHE_SECONDS)
        self.api_keys: TTLCache[uuid.UUID, ApiKeyState | None] = TTLCache(API_KEY_CACHE_SECONDS)
        self.tokens: TTLCache[str, AccessClaims] = TTLCache(TOKEN_CACHE_SECONDS, max_entries=20_000)

    def clear(self) -> None:
        self.staff.clear()
        self.member_versions.clear()
        self.api_keys.clear()
        self.tokens.clear()


def auth_state(app: FastAPI) -> AuthState:
    state: AuthState | None = getattr(app.state, "auth", None)
    if state is None:
        state = AuthState()
        app.state.auth = state
    return state
