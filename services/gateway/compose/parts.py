"""Reading the parts of a composed view from the services, in parallel, each on a budget.

Every part is one GET on the process's shared HTTP client (`app.state.http`), carrying an
internal token for the identity the view reads as. A part ends in one of three ways: an
answer (2xx, its JSON), a refusal the view must pass on (`PartRefused`, e.g. members saying
404), or a failure (transport error, timeout, 5xx, anything else): the view leaves the part
out and names its service in `degraded`. Nothing here waits longer than the part's budget.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog
from fastapi import Request

from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, InternalTokenCache
from services.common.observability import request_id_of
from services.common.settings import ServiceName, Settings

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

    def __init__(self, service: ServiceName, response: httpx.Response) -> None:
        super().__init__(f"{service} answered {response.status_code}")
        self.service = service
        self.status_code = response.status_code
        self.response = response


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
        self.http: httpx.AsyncClient = state.http
        tokens: InternalTokenCache = state.internal_tokens
        self.headers = {INTERNAL_TOKEN_HEADER: tokens.token_for(identity), "accept": "application/json"}
        request_id = request_id_of(request)
        if request_id:
            self.headers["x-request-id"] = request_id

    async def get(self, part: Part, budget: float) -> Any:
        """The part's JSON; PartRefused for a 4xx, PartFailed for everything else (within `budget` s)."""
        url = self.settings.url_for(part.service) + part.path
        try:
            async with asyncio.timeout(budget):
                response = await self.http.get(
                    url, params=dict(part.params), headers=self.headers, timeout=httpx.Timeout(budget)
                )
                if response.is_success:
                    return response.json()
        except TimeoutError as exc:
            raise PartFailed(part.service, f"no answer within {budget:g} s") from exc
        except httpx.TimeoutException as exc:
            raise PartFailed(part.service, f"no answer within {budget:g} s") from exc
        except httpx.HTTPError as exc:
            raise PartFailed(part.service, f"unreachable ({type(exc).__name__})") from exc
        except ValueError as exc:
            raise PartFailed(part.service, "an answer that is not JSON", unavailable=False) from exc
        if 400 <= response.status_code < 500 and response.status_code not in (408, 429):
            raise PartRefused(part.service, response)
        unavailable = response.status_code in (408, 429, 503, 504)
        raise PartFailed(part.service, f"status {response.status_code}", unavailable=unavailable)

    async def gather(self, parts: Mapping[str, Part], budget: float) -> PartResults:
        """Every part at once; each ends as a value, a refusal or a failure (never raises)."""
        names = list(parts)
        calls: list[Awaitable[Any]] = [self.get(parts[name], budget) for name in names]
        outcomes = await asyncio.gather(*calls, return_exceptions=True)
        results = PartResults()
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

    def value(self, name: str) -> Any | None:
        return self.values.get(name)

    def degraded(self) -> list[str]:
        """The services that failed any part, or refused one the view expected to read."""
        return sorted({self.services[name] for name in self.errors})
