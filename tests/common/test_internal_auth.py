"""A service answers 401 to anything without a valid internal token, except the probes."""

from __future__ import annotations

import time
import uuid
from typing import Any

import jwt
import pytest
from starlette.requests import Request

from services.common.identity import (
    INTERNAL_AUDIENCE,
    INTERNAL_ISSUER,
    INTERNAL_TOKEN_HEADER,
    Identity,
    InternalTokenCache,
    VerifiedTokenCache,
    ensure_self_or,
    require,
    sign_internal_token,
    verify_internal_token,
)
from services.common.problems import Forbidden, NotFound, Unauthorized
from services.common.settings import Settings
from tests.common.kit import KitSystem
from tests.system import member, partner, staff

# Every kind of non-probe path: routes, their wrong methods, the event intake, the
# OpenAPI document and paths that do not exist.
PROTECTED = [
    ("GET", "/things"),
    ("POST", "/things"),
    ("DELETE", "/things"),
    ("GET", "/things/boom"),
    ("POST", "/internal/events"),
    ("GET", "/openapi.json"),
    ("GET", "/docs"),
    ("GET", "/no/such/path"),
]


def claims(settings: Settings, **changes: Any) -> dict[str, Any]:
    now = int(time.time())
    base = {
        "iss": INTERNAL_ISSUER,
        "aud": INTERNAL_AUDIENCE,
        "typ": "internal",
        "iat": now,
        "exp": now + 60,
        "sub": "someone",
        "kind": "staff",
        "roles": ["admin"],
        "scopes": [],
        "mid": None,
    }
    base.update(changes)
    return {k: v for k, v in base.items() if v is not ...}


def forge(settings: Settings, key: str | None = None, **changes: Any) -> str:
    secret = key or settings.internal_signing_key.get_secret_value()
    return jwt.encode(claims(settings, **changes), secret, algorithm="HS256")


BAD_TOKENS = {
    "expired": lambda s: forge(s, iat=int(time.time()) - 600, exp=int(time.time()) - 300),
    "wrong-key": lambda s: forge(s, key="another-key-entirely-0123456789abcdef"),
    "wrong-audience": lambda s: forge(s, aud="somebody-else"),
    "wrong-issuer": lambda s: forge(s, iss="https://evil.example"),
    "wrong-typ": lambda s: forge(s, typ="access"),
    "no-typ": lambda s: forge(s, typ=...),
    "no-exp": lambda s: forge(s, exp=...),
    "bad-kind": lambda s: forge(s, kind="robot"),
    "bad-member-id": lambda s: forge(s, mid="not-a-uuid"),
    "none-alg": lambda s: jwt.encode(claims(s), key="", algorithm="none"),
    "garbage": lambda s: "not.a.jwt",
}


@pytest.mark.parametrize(("method", "path"), PROTECTED)
async def test_missing_token_is_401_problem_everywhere(kit: KitSystem, method: str, path: str) -> None:
    async with kit.client(None) as client:
        response = await client.request(method, path, json={} if method == "POST" else None)
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == "Bearer"
    assert response.json()["type"] == "https://qunyun.dev/problems/unauthorized"


@pytest.mark.parametrize("kind", sorted(BAD_TOKENS))
@pytest.mark.parametrize(("method", "path"), [("GET", "/things"), ("POST", "/internal/events"), ("GET", "/nowhere")])
async def test_bad_tokens_are_401(kit: KitSystem, kind: str, method: str, path: str) -> None:
    token = BAD_TOKENS[kind](kit.settings)
    async with kit.client(None) as client:
        response = await client.request(
            method, path, headers={INTERNAL_TOKEN_HEADER: token}, json={"events": []} if method == "POST" else None
        )
    assert response.status_code == 401, (kind, response.text)
    assert response.json()["type"] == "https://qunyun.dev/problems/unauthorized"


@pytest.mark.parametrize("path", ["/healthz", "/readyz", "/metrics"])
async def test_probes_need_no_token(kit: KitSystem, path: str) -> None:
    async with kit.client(None) as client:
        assert (await client.get(path)).status_code == 200


async def test_probe_exemption_is_exact(kit: KitSystem) -> None:
    async with kit.client(None) as client:
        assert (await client.get("/healthz/")).status_code == 401
        assert (await client.get("/metrics/../things")).status_code == 401


async def test_valid_token_passes_and_carries_identity(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        assert (await client.get("/things")).status_code == 200


async def test_events_intake_demands_the_system_caller(kit: KitSystem) -> None:
    async with kit.client(staff("admin"), service="members") as client:
        response = await client.post("/internal/events", json={"events": []})
    assert response.status_code == 403


def test_token_round_trip_keeps_the_identity() -> None:
    settings = Settings()
    mid = uuid.uuid4()
    for identity in (staff("operator", "agent"), member(mid), partner("members:write", "read")):
        assert verify_internal_token(sign_internal_token(identity, settings), settings) == identity


def test_small_clock_skew_is_tolerated_but_not_more() -> None:
    settings = Settings()
    skewed = sign_internal_token(staff("admin"), settings, now=time.time() + 3)
    assert verify_internal_token(skewed, settings).roles == ("admin",)
    stale = sign_internal_token(staff("admin"), settings, now=time.time() - settings.internal_token_ttl_seconds - 10)
    with pytest.raises(Unauthorized):
        verify_internal_token(stale, settings)


def test_token_cache_reuses_then_renews_before_expiry() -> None:
    settings = Settings(internal_token_ttl_seconds=60)
    cache = InternalTokenCache(settings)
    caller = staff("operator")
    start = 1_900_000_000.0
    first = cache.token_for(caller, now=start)
    assert cache.token_for(caller, now=start + 10) == first
    # The same caller on another request (request_id differs) shares the token.
    assert cache.token_for(caller.model_copy(update={"request_id": "r-2"}), now=start + 20) == first
    renewed = cache.token_for(caller, now=start + 31)  # half the lifetime has passed
    assert renewed != first
    assert jwt.decode(renewed, options={"verify_signature": False})["exp"] == int(start + 31) + 60
    # Every token it hands out still has at least half its lifetime left.
    assert jwt.decode(first, options={"verify_signature": False})["exp"] - (start + 30) >= 30
    other = cache.token_for(staff("operator"), now=start + 31)
    assert other != renewed


def test_token_cache_is_bounded() -> None:
    cache = InternalTokenCache(Settings(), max_entries=3)
    for _ in range(10):
        cache.token_for(staff("agent"))
    assert len(cache._tokens) <= 3


def calling(identity: Identity) -> Request:
    """A request whose verified caller is `identity` (what InternalAuthMiddleware leaves)."""
    return Request({"type": "http", "headers": [], "state": {"caller": identity}})


async def test_require_and_ensure_self_or() -> None:
    mid = uuid.uuid4()
    check = require("operator", scopes=["members:write"], allow_member=True)
    assert await check(calling(staff("operator"))) is not None
    assert await check(calling(partner("members:write"))) is not None
    assert await check(calling(member(mid))) is not None
    with pytest.raises(Forbidden):
        await check(calling(staff("agent")))
    with pytest.raises(Forbidden):
        await require("operator")(calling(member(mid)))
    assert await require("operator")(calling(staff("admin"))) is not None
    with pytest.raises(Unauthorized):  # no verified caller at all
        await require("operator")(Request({"type": "http", "headers": [], "state": {}}))
    ensure_self_or(member(mid), mid, "operator")
    with pytest.raises(NotFound):
        ensure_self_or(member(mid), uuid.uuid4(), "operator")
    ensure_self_or(staff("operator"), mid, "operator")
    with pytest.raises(Forbidden):
        ensure_self_or(staff("agent"), mid, "operator")
    ensure_self_or(partner("members:read"), mid, "operator", scopes=["members:read"])
    assert Identity(kind="system", id="system").is_admin


def test_verified_token_cache_reuses_a_verification_until_expiry(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = Settings(env="test", internal_token_ttl_seconds=60)
    cache = VerifiedTokenCache(settings)
    who = Identity(kind="staff", id="s1", roles=("operator",))
    token = sign_internal_token(who, settings)
    decode = jwt.decode
    calls: list[str] = []

    def counting_decode(*args: Any, **kwargs: Any) -> Any:
        calls.append(args[0])
        return decode(*args, **kwargs)

    monkeypatch.setattr(jwt, "decode", counting_decode)
    assert cache.verify(token) == who
    assert cache.verify(token) == who
    assert len(calls) == 1  # the second answer came from the cache
    assert cache.verify(token, now=time.time() + 120) == who
    assert len(calls) == 2  # past the token's expiry the cache does not answer
    with pytest.raises(Unauthorized):
        cache.verify(sign_internal_token(who, settings, now=time.time() - 120))  # expired
    with pytest.raises(Unauthorized):
        cache.verify(token[:-2] + ("xx" if not token.endswith("xx") else "yy"))  # forged: never a hit
