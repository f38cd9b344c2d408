"""The caller's identity as services see it, carried in the gateway's internal token.

The gateway authenticates the outside caller (staff JWT, member JWT, partner API key)
and forwards an `X-Internal-Token`: a short-lived HS256 JWT signed with the internal
key. Every service verifies it on every request and decides authorization itself.
Background jobs (relays) sign a `system` identity with the same key.
"""

from __future__ import annotations

import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from typing import Annotated, Literal

import jwt
from fastapi import Depends, Request
from pydantic import BaseModel, ConfigDict, Field
from starlette.types import ASGIApp, Receive, Scope, Send

from services.common.problems import Forbidden, NotFound, Unauthorized, problem_response
from services.common.settings import Settings

INTERNAL_TOKEN_HEADER = "X-Internal-Token"
INTERNAL_AUDIENCE = "qunyun-internal"
INTERNAL_ISSUER = "qunyun-gateway"
INTERNAL_TYPE = "internal"
CLOCK_SKEW_SECONDS = 5  # gateway and services run on different hosts

CallerKind = Literal["staff", "member", "partner", "system"]
PROBE_PATHS = frozenset({"/healthz", "/readyz", "/metrics"})
ROLES = ("admin", "operator", "reviewer", "agent", "analyst", "member")


class Identity(BaseModel):
    """Who is calling: staff (with roles), a member, a partner key (with scopes) or the system."""

    model_config = ConfigDict(frozen=True)

    kind: CallerKind
    id: str
    roles: tuple[str, ...] = ()
    scopes: tuple[str, ...] = ()
    member_id: uuid.UUID | None = None
    request_id: str | None = Field(default=None, exclude=True)

    @property
    def key(self) -> str:
        """A stable string naming this caller (rate limits, idempotency keys)."""
        return f"{self.kind}:{self.id}"

    @property
    def is_admin(self) -> bool:
        return self.kind == "system" or "admin" in self.roles

    def has_role(self, *roles: str) -> bool:
        return self.is_admin or (self.kind == "staff" and any(r in self.roles for r in roles))

    def has_scope(self, *scopes: str) -> bool:
        return self.kind == "partner" and any(s in self.scopes for s in scopes)

    def is_member(self, member_id: uuid.UUID) -> bool:
        return self.kind == "member" and self.member_id == member_id


SYSTEM = Identity(kind="system", id="system", roles=("admin",))


def sign_internal_token(identity: Identity, settings: Settings, *, now: float | None = None) -> str:
    issued = int(now if now is not None else time.time())
    claims = {
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "typ": INTERNAL_TYPE,
        "iat": issued,
        "exp": issued + settings.internal_token_ttl_seconds,
        "sub": identity.id,
        "kind": identity.kind,
        "roles": list(identity.roles),
        "scopes": list(identity.scopes),
        "mid": str(identity.member_id) if identity.member_id else None,
    }
    return jwt.encode(claims, settings.internal_signing_key.get_secret_value(), algorithm="HS256")


def _decode_internal_token(token: str, settings: Settings) -> tuple[Identity, float]:
    """The identity a valid internal token carries, and when the token expires."""
    try:
        claims = jwt.decode(
            token,
            settings.internal_signing_key.get_secret_value(),
            algorithms=["HS256"],
            audience=INTERNAL_AUDIENCE,
            issuer=INTERNAL_ISSUER,
            options={"require": ["exp", "iat", "sub", "aud", "iss"]},
            leeway=CLOCK_SKEW_SECONDS,
        )
    except jwt.PyJWTError as exc:
        raise Unauthorized("The internal token is missing, expired or invalid.") from exc
    if claims.get("typ") != INTERNAL_TYPE:
        raise Unauthorized("The internal token has the wrong type.")
    try:
        identity = Identity(
            kind=claims["kind"],
            id=claims["sub"],
            roles=tuple(claims.get("roles") or ()),
            scopes=tuple(claims.get("scopes") or ()),
            member_id=uuid.UUID(claims["mid"]) if claims.get("mid") else None,
        )
        return identity, float(claims["exp"])
    except (KeyError, ValueError, TypeError) as exc:
        raise Unauthorized("The internal token carries a malformed identity.") from exc


def verify_internal_token(token: str, settings: Settings) -> Identity:
    return _decode_internal_token(token, settings)[0]


class VerifiedTokenCache:
    """Remembers tokens already verified, until they expire.

    The gateway reuses one token per caller for half its lifetime, so nearly every request
    a service sees carries a token it has verified before; checking the signature again
    would cost more CPU than the rest of a simple read. Only valid tokens are kept.
    """

    def __init__(self, settings: Settings, max_entries: int = 10_000) -> None:
        self._settings = settings
        self._max = max_entries
        self._verified: dict[str, tuple[float, Identity]] = {}

    def verify(self, token: str, *, now: float | None = None) -> Identity:
        current = now if now is not None else time.time()
        cached = self._verified.get(token)
        if cached is not None and cached[0] + CLOCK_SKEW_SECONDS > current:
            return cached[1]
        identity, expires_at = _decode_internal_token(token, self._settings)
        if len(self._verified) >= self._max:
            self._verified = {t: v for t, v in self._verified.items() if v[0] + CLOCK_SKEW_SECONDS > current}
            if len(self._verified) >= self._max:
                self._verified.clear()
        self._verified[token] = (expires_at, identity)
        return identity


class InternalTokenCache:
    """Signs internal tokens, reusing one per identity until half its lifetime has passed.

    Signing costs far more than a dict lookup, and the gateway signs on every request.
    """

    def __init__(self, settings: Settings, max_entries: int = 10_000) -> None:
        self._settings = settings
        self._max = max_entries
        self._tokens: dict[tuple[object, ...], tuple[float, str]] = {}

    @staticmethod
    def _cache_key(identity: Identity) -> tuple[object, ...]:
        # Only what the token carries: `request_id` differs on every request and must not
        # defeat the cache.
        return (identity.kind, identity.id, identity.roles, identity.scopes, identity.member_id)

    def token_for(self, identity: Identity, *, now: float | None = None) -> str:
        """A valid token for `identity`, re-signed once half its lifetime has passed."""
        now = time.time() if now is None else now
        key = self._cache_key(identity)
        cached = self._tokens.get(key)
        if cached and cached[0] > now:
            return cached[1]
        if len(self._tokens) >= self._max:
            self._tokens.clear()
        token = sign_internal_token(identity, self._settings, now=now)
        self._tokens[key] = (now + self._settings.internal_token_ttl_seconds / 2, token)
        return token


async def get_caller(request: Request) -> Identity:
    """The verified caller of this request; 401 without a valid internal token."""
    cached = getattr(request.state, "caller", None)
    if cached is not None:
        return cached  # type: ignore[no-any-return]
    token = request.headers.get(INTERNAL_TOKEN_HEADER)
    if not token:
        raise Unauthorized("This service is reached only through the gateway (no internal token).")
    identity = verify_internal_token(token, request.app.state.settings)
    request.state.caller = identity
    return identity


Caller = Annotated[Identity, Depends(get_caller)]


def require(
    *roles: str, scopes: Iterable[str] = (), allow_member: bool = False
) -> Callable[[Request], Awaitable[Identity]]:
    """A dependency allowing staff with any of `roles` (admin always), partners with any of
    `scopes`, and members if `allow_member` (the route then checks it is their own row)."""
    scope_list = tuple(scopes)

    async def check(request: Request) -> Identity:
        # The caller read here rather than through the `Caller` dependency: one level of
        # dependency solving less on every route, for the same answer.
        caller = await get_caller(request)
        if caller.has_role(*roles) or caller.has_scope(*scope_list):
            return caller
        if allow_member and caller.kind == "member":
            return caller
        raise Forbidden("Your role does not allow this.")

    return check


def ensure_self_or(caller: Identity, member_id: uuid.UUID, *roles: str, scopes: Iterable[str] = ()) -> None:
    """A member may touch only their own resources: anything else is 404 so nothing leaks."""
    if caller.kind == "member":
        if caller.member_id != member_id:
            raise NotFound("No such member.")
        return
    if not (caller.has_role(*roles) or caller.has_scope(*tuple(scopes))):
        raise Forbidden("Your role does not allow this.")


class InternalAuthMiddleware:
    """Refuses (401) every request without a valid internal token, known route or not,
    except the health and metrics probes. Services sit behind it even on a private network."""

    def __init__(self, app: ASGIApp, settings: Settings, exempt: frozenset[str] = PROBE_PATHS) -> None:
        self.app = app
        self.settings = settings
        self.verified = VerifiedTokenCache(settings)
        self.exempt = exempt

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan" or (scope["type"] == "http" and scope["path"] in self.exempt):
            await self.app(scope, receive, send)
            return
        token = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"x-internal-token"), None)
        try:
            if not token:
                raise Unauthorized("This service is reached only through the gateway (no internal token).")
            identity = self.verified.verify(token)
        except Unauthorized as exc:
            if scope["type"] != "http":  # a websocket: refuse the handshake
                await send({"type": "websocket.close", "code": 1008})
                return
            response = problem_response(
                401, exc.type_slug, exc.problem_title, exc.detail, instance=scope["path"], headers=exc.headers
            )
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})["caller"] = identity
        await self.app(scope, receive, send)
