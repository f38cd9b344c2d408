"""Reading the parts of a composed view from the services, in parallel, each on a budget.

Every part is one GET on the transport of the process's shared HTTP client (the one the
proxy uses, pooled), carrying an internal token for the identity the view reads as. A part ends in one of three ways: an
answer (2xx, its JSON), a refusal the view must pass on (`PartRefused`, e.g. members saying
404), or a failure (transport error, timeout, 5xx, anything else): the view leaves the part
out and names its service in `degraded`. Nothing here waits longer than the part's budget.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import orjson
import structlog
from fastapi import Request

from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, InternalTokenCache
from services.common.observability import request_id_of
from services.common.settings import ServiceName, Settings
from services.gateway.proxy import Proxy

log = structlog.get_logger("qunyun.gateway.compose")

QueryParams = Mapping[str, str | Sequence[str]]


class PartFailed(Exception):
    """A part could not be read: the service is down or too slow (`unavailable`), or answered
    with an error or something unreadable (`broken`)."""

    def __init__(self, service: ServiceName, reason: str, *, unavailable: bool = True) -> None:
        super().__init__(f"{service}: {reason}")
        self.service = service
        self.reason = reason
        self.unavailable = unavailable


class PartRefused(Exception):
    """The service answered, and refused (4xx): the view decides what that means."""

    def __init__(self, service: ServiceName, status_code: int) -> None:
        super().__init__(f"{service} answered {status_code}")
        self.service = service
        self.status_code = status_code


@dataclass(frozen=True, slots=True)
class Part:
    """One GET of a composed view."""

    service: ServiceName
    path: str
    params: QueryParams = field(default_factory=dict)


class Upstream:
    """Reads parts from the services for one request, as one identity."""

    def __init__(self, request: Request, identity: Identity) -> None:
        state = request.app.state
        self.settings: Settings = state.settings
        # The proxy's own way to the services (its aiohttp session in production): the shared
        # client's cookie, auth and redirect layers would cost more than the composition.
        self.proxy: Proxy = state.proxy
        tokens: InternalTokenCache = state.internal_tokens
        self.headers = {
            INTERNAL_TOKEN_HEADER: tokens.token_for(identity),
            "accept": "application/json",
            "accept-encoding": "identity",
        }
        request_id = request_id_of(request)
        if request_id:
            self.headers["x-request-id"] = request_id

    async def get(self, part: Part, budget: float) -> Any:
        """The part's JSON; PartRefused for a 4xx, PartFailed for everything else (within `budget` s)."""
        try:
            async with asyncio.timeout(budget):
                status, body = await self.proxy.fetch(
                    self.settings.url_for(part.service) + part.path,
                    [(k, v) for k, vs in part.params.items() for v in ((vs,) if isinstance(vs, str) else vs)],
                    self.headers,
                    budget,
                    min(budget, self.settings.upstream_connect_timeout_seconds),
                )
            if 200 <= status < 300:
                return orjson.loads(body)
        except TimeoutError as exc:
            raise PartFailed(part.service, f"no answer within {budget:g} s") from exc
        except httpx.TimeoutException as exc:
            raise PartFailed(part.service, f"no answer within {budget:g} s") from exc
        except httpx.HTTPError as exc:
            raise PartFailed(part.service, f"unreachable ({type(exc).__name__})") from exc
        except orjson.JSONDecodeError as exc:
            raise PartFailed(part.service, "an answer that is not JSON", unavailable=False) from exc
        if 400 <= status < 500 and status not in (408, 429):
            raise PartRefused(part.service, status)
        unavailable = status in (408, 429, 503, 504)
        raise PartFailed(part.service, f"status {status}", unavailable=unavailable)

    async def _timed(self, name: str, part: Part, budget: float, durations: dict[str, float]) -> Any:
        started = time.perf_counter()
        try:
            return await self.get(part, budget)
        finally:
            durations[name] = time.perf_counter() - started

    async def gather(self, parts: Mapping[str, Part], budget: float) -> PartResults:
        """Every part at once; each ends as a value, a refusal or a failure (never raises)."""
        names = list(parts)
        results = PartResults()
        calls: list[Awaitable[Any]] = [self._timed(name, parts[name], budget, results.durations) for name in names]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        for name, outcome in zip(names, outcomes, strict=True):
            if isinstance(outcome, PartFailed | PartRefused):
                results.errors[name] = outcome
                if isinstance(outcome, PartFailed):
                    log.warning("compose_part_failed", part=name, service=outcome.service, reason=outcome.reason)
            elif isinstance(outcome, BaseException):
                raise outcome
            else:
                results.values[name] = outcome
        results.services = {name: parts[name].service for name in names}
        return results


@dataclass(slots=True)
class PartResults:
    values: dict[str, Any] = field(default_factory=dict)
    errors: dict[str, PartFailed | PartRefused] = field(default_factory=dict)
    services: dict[str, ServiceName] = field(default_factory=dict)
    durations: dict[str, float] = field(default_factory=dict)  # seconds each part took

    def server_timing(self) -> str:
        """The parts' durations as a `Server-Timing` header (W3C): `points;dur=4.2, ...` in ms."""
        return ", ".join(
            f"{name.replace('_', '-')};dur={seconds * 1000:.1f}" for name, seconds in self.durations.items()
        )

    def value(self, name: str) -> Any | None:
        return self.values.get(name)
