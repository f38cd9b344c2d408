"""Per-caller rate limits with the IETF RateLimit header fields.

Every answer outside the probes and docs carries (draft-ietf-httpapi-ratelimit-headers,
structured fields)::

    RateLimit-Policy: "default";q=600;w=60
    RateLimit: "default";r=<remaining>;t=<seconds until the window resets>

and a caller over the limit gets a 429 problem with `Retry-After`. Callers are counted by
`Identity.key`, anonymous ones (and bad credentials) by client address.

Counting sits behind the small `RateLimitStore` interface, in fixed windows aligned to the
epoch (so replicas need no coordination beyond a shared counter):

- `InMemoryRateLimitStore` counts per process (per replica: N replicas allow up to N times
  the limit). It is the store when `QUNYUN_REDIS_URL` is unset.
- `RedisRateLimitStore` keeps the counters in Redis, shared by every replica: one atomic
  Lua script per hit (`INCR` + `PEXPIRE` of the window's key, returning count and TTL).
  When Redis cannot be reached it fails open *to local counting*: the hit is counted by
  its in-process fallback store (as if Redis were not configured), a warning is logged
  and `qunyun_gateway_ratelimit_store_errors_total` grows. A rate limiter exists to shed
  abuse, not to be a second point of failure for every request, so an outage of it must
  not take the API down; the local counters still bound each replica meanwhile.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Protocol

import redis.asyncio as redis
import structlog
from prometheus_client import CollectorRegistry, Counter
from redis.asyncio.retry import Retry
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import Unauthorized, problem_response
from services.common.settings import Settings
from services.gateway.callers import resolve_caller

log = structlog.get_logger("qunyun.gateway.ratelimit")

POLICY_NAME = "default"
# Probes, docs, the console's static page and the services' event deliveries are never limited
# (the console's API calls are: they go to /v1 like any client's).
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc", "/console"})
EXEMPT_PREFIXES = ("/docs/", "/console/", "/internal/")


@dataclass(frozen=True, slots=True)
class RateDecision:
    allowed: bool
    remaining: int
    reset_seconds: int


class RateLimitStore(Protocol):
    """Counts requests per key in fixed windows of `window` seconds aligned to the epoch."""

    async def hit(self, key: str, limit: int, window: int) -> RateDecision: ...


class InMemoryRateLimitStore:
    """Fixed-window counters in this process, at most `max_keys` of them.

    When full, counters of past windows go first, then the oldest keys: memory stays
    bounded under a flood of distinct callers, at the price of forgetting some counts.
    """

    def __init__(self, max_keys: int = 100_000, clock: Callable[[], float] = time.time) -> None:
        self.max_keys = max_keys
        self.clock = clock
        self._counters: dict[str, tuple[int, int]] = {}  # key -> (window index, count)

    def __len__(self) -> int:
        return len(self._counters)

    def _make_room(self, current: int) -> None:
        # Free a tenth at once so the O(n) sweep runs once per max_keys/10 new callers.
        stale = [key for key, (index, _) in self._counters.items() if index != current]
        for key in stale:
            del self._counters[key]
        target = int(self.max_keys * 0.9)
        while len(self._counters) > target:
            del self._counters[next(iter(self._counters))]

    async def hit(self, key: str, limit: int, window: int) -> RateDecision:
        now = self.clock()
        index = int(now // window)
        reset = max(1, math.ceil((index + 1) * window - now))
        entry = self._counters.get(key)
        count = entry[1] if entry is not None and entry[0] == index else 0
        if count >= limit:
            return RateDecision(False, 0, reset)
        if entry is None and len(self._counters) >= self.max_keys:
            self._make_room(index)
        self._counters[key] = (index, count + 1)
        return RateDecision(True, limit - count - 1, reset)


# One hit, atomically: count it in the window's key, give the key the window's remaining
# lifetime on first use (a key found without one, which nothing here leaves, is repaired),
# and answer {count, milliseconds until the key expires}.
HIT_SCRIPT = """
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
local ttl = redis.call('PTTL', KEYS[1])
if ttl < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
  ttl = tonumber(ARGV[1])
end
return {count, ttl}
"""
# How long a replica counts locally after Redis failed, before trying it again: while Redis
# is down, requests do not each wait for a connection timeout.
REDIS_RETRY_SECONDS = 5.0
REDIS_TIMEOUT_SECONDS = 0.25


class RedisRateLimitStore:
    """Fixed-window counters in Redis, shared by every gateway replica.

    The key of a window is `<prefix>ratelimit:<caller key>:<window seconds>:<window index>`;
    it expires when its window ends. The script is loaded once and then run by its SHA
    (`EVALSHA`, loading it again if the server forgot it, as after a restart). On any Redis
    error the hit goes to `fallback` (in-process counting; see the module docstring).
    """

    def __init__(
        self,
        client: redis.Redis,
        *,
        prefix: str = "qunyun:",
        clock: Callable[[], float] = time.time,
        fallback: RateLimitStore | None = None,
        retry_seconds: float = REDIS_RETRY_SECONDS,
    ) -> None:
        self.client = client
        self.prefix = prefix
        self.clock = clock
        self.fallback = fallback or InMemoryRateLimitStore(clock=clock)
        self.retry_seconds = retry_seconds
        self._script = client.register_script(HIT_SCRIPT)
        self._skip_until = 0.0  # monotonic: count locally until then (Redis failed recently)
        self.errors: Counter | None = None

    @classmethod
    def from_url(cls, url: str, *, prefix: str = "qunyun:", **kwargs: Any) -> RedisRateLimitStore:
        client = redis.Redis.from_url(
            url,
            socket_timeout=REDIS_TIMEOUT_SECONDS,
            socket_connect_timeout=REDIS_TIMEOUT_SECONDS,
            retry=Retry(NoBackoff(), 1),  # one quick retry (a dropped pooled connection), then fall back
            health_check_interval=30,
        )
        return cls(client, prefix=prefix, **kwargs)

    def register_metrics(self, registry: CollectorRegistry) -> None:
        self.errors = Counter(
            "qunyun_gateway_ratelimit_store_errors_total",
            "Failed calls to the shared rate-limit store (Redis); hits are counted in-process for a while after each",
            registry=registry,
        )

    def key(self, caller: str, window: int, index: int) -> str:
        return f"{self.prefix}ratelimit:{caller}:{window}:{index}"

    async def hit(self, key: str, limit: int, window: int) -> RateDecision:
        if time.monotonic() < self._skip_until:
            return await self.fallback.hit(key, limit, window)
        now = self.clock()
        index = int(now // window)
        window_left_ms = max(1, math.ceil(((index + 1) * window - now) * 1000))
        try:
            count, ttl_ms = await self._script(keys=[self.key(key, window, index)], args=[window_left_ms])
        except (RedisError, OSError) as exc:
            self._skip_until = time.monotonic() + self.retry_seconds
            if self.errors is not None:
                self.errors.inc()
            log.warning(
                "ratelimit_store_unavailable",
                error=f"{type(exc).__name__}: {exc}"[:200],
                fallback="in-process counters",
                retry_in_seconds=self.retry_seconds,
            )
            return await self.fallback.hit(key, limit, window)
        reset = max(1, math.ceil(int(ttl_ms) / 1000))
        count = int(count)
        if count > limit:
            return RateDecision(False, 0, reset)
        return RateDecision(True, limit - count, reset)

    async def aclose(self) -> None:
        await self.client.aclose()


def build_rate_limit_store(settings: Settings) -> RateLimitStore:
    """The store the settings ask for: Redis with `QUNYUN_REDIS_URL`, else in-process."""
    if settings.redis_url:
        return RedisRateLimitStore.from_url(settings.redis_url.get_secret_value(), prefix=settings.redis_key_prefix)
    return InMemoryRateLimitStore()


def is_exempt(path: str) -> bool:
    return path in EXEMPT_PATHS or path.startswith(EXEMPT_PREFIXES)


def client_key(scope: Scope) -> str:
    client = scope.get("client")
    return f"ip:{client[0] if client else 'unknown'}"


class RateLimitMiddleware:
    """Counts each request against its caller's window and stamps the RateLimit fields."""

    def __init__(self, app: ASGIApp, settings: Settings, store: RateLimitStore) -> None:
        self.app = app
        self.store = store
        self.limit, self.window = settings.rate_limit_parts
        self.policy = f'"{POLICY_NAME}";q={self.limit};w={self.window}'.encode()

    async def caller_key(self, scope: Scope, receive: Receive) -> str:
        try:
            identity = await resolve_caller(Request(scope, receive))
        except Unauthorized:
            identity = None  # bad credentials are answered 401 later; count them by address
        return identity.key if identity is not None else client_key(scope)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or is_exempt(scope["path"]):
            await self.app(scope, receive, send)
            return
        decision = await self.store.hit(await self.caller_key(scope, receive), self.limit, self.window)
        fields = [
            (b"ratelimit-policy", self.policy),
            (b"ratelimit", f'"{POLICY_NAME}";r={decision.remaining};t={decision.reset_seconds}'.encode()),
        ]
        if not decision.allowed:
            response = problem_response(
                429,
                detail=f"Rate limit of {self.limit} requests per {self.window} s exceeded; "
                f"retry in {decision.reset_seconds} s.",
                instance=scope["path"],
                headers={"Retry-After": str(decision.reset_seconds)},
            )
            response.raw_headers.extend(fields)
            await response(scope, receive, send)
            return

        async def send_with_fields(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", ()), *fields]
            await send(message)

        await self.app(scope, receive, send_with_fields)
