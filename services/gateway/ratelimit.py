"""Per-caller rate limits with the IETF RateLimit header fields.

Every answer outside the probes and docs carries (draft-ietf-httpapi-ratelimit-headers,
structured fields)::

    RateLimit-Policy: "default";q=600;w=60
    RateLimit: "default";r=<remaining>;t=<seconds until the window resets>

and a caller over the limit gets a 429 problem with `Retry-After`. Callers are counted by
`Identity.key`, anonymous ones (and bad credentials) by client address.

Counting sits behind the small `RateLimitStore` interface: `InMemoryRateLimitStore` counts
per process (per replica: N replicas allow up to N times the limit); a shared store is one
class with the same `hit` (Redis: `INCR key:<window>` + `EXPIRE`; Postgres: `INSERT ... ON
CONFLICT DO UPDATE SET count = count + 1 RETURNING count`), since windows are aligned to
the epoch and need no other coordination.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Protocol

from starlette.requests import Request
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from services.common.problems import Unauthorized, problem_response
from services.common.settings import Settings
from services.gateway.callers import resolve_caller

POLICY_NAME = "default"
# Probes, docs and the services' event deliveries are never limited.
EXEMPT_PATHS = frozenset({"/healthz", "/readyz", "/metrics", "/openapi.json", "/docs", "/redoc"})
EXEMPT_PREFIXES = ("/docs/", "/internal/")


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
