"""The gateway's route table: which service answers which `/v1` path template.

The table is built from the services' own OpenAPI documents, so a new endpoint in a
service needs no gateway change. Matching is by template, segment by segment, with
literal segments beating parameters at the first place two templates differ (the
order Starlette users expect): `/v1/members/by-external-id/{x}` beats
`/v1/members/{id}/{y}`-like templates, and `/v1/members/{id}/points` (rewards) never
shadows `/v1/members/{id}` (members) because they differ in length.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx
import structlog

from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, InternalTokenCache
from services.common.settings import DOMAIN_SERVICES, Settings

log = structlog.get_logger("qunyun.gateway.routing")

PUBLIC_PREFIX = "/v1/"
HTTP_METHODS = frozenset({"GET", "PUT", "POST", "DELETE", "PATCH", "HEAD", "OPTIONS", "TRACE"})
# After a refresh, another one waits at least this long: unknown paths cannot hammer the services.
REFRESH_INTERVAL_SECONDS = 5.0
FETCH_TIMEOUT_SECONDS = 5.0


@dataclass(frozen=True, slots=True)
class Route:
    """One path template of one service, with the methods it answers."""

    service: str
    template: str
    methods: frozenset[str]

    @property
    def path(self) -> str:
        """The template, under the name Starlette routes use (metrics label requests by it)."""
        return self.template


@dataclass(slots=True)
class _Node:
    literals: dict[str, _Node] = field(default_factory=dict)
    param: _Node | None = None
    route: Route | None = None


@dataclass(frozen=True, slots=True)
class RouteMatch:
    """The result of matching a request: a route that allows the method, or the methods that would."""

    route: Route | None
    allowed: frozenset[str]


def _segments(path: str) -> list[str]:
    return path.strip("/").split("/")


def _is_param(segment: str) -> bool:
    return segment.startswith("{") and segment.endswith("}")


class RouteTable:
    """Path templates of every service in a segment trie (literals first, then parameters)."""

    def __init__(self, routes: Iterable[Route] = ()) -> None:
        self._root = _Node()
        self.routes: list[Route] = []
        for route in routes:
            self._add(route)

    def _add(self, route: Route) -> None:
        node = self._root
        for segment in _segments(route.template):
            if _is_param(segment):
                node.param = node.param or _Node()
                node = node.param
            else:
                node = node.literals.setdefault(segment, _Node())
        if node.route is not None:
            # Two services (or one twice) claim the same template: first wins, methods merge if same service.
            if node.route.service != route.service:
                log.warning("route_conflict", template=route.template, kept=node.route.service, dropped=route.service)
                return
            route = Route(route.service, node.route.template, node.route.methods | route.methods)
            self.routes.remove(node.route)
        node.route = route
        self.routes.append(route)

    def match(self, method: str, path: str) -> RouteMatch:
        """The most specific template allowing `method`; else the methods of every matching template."""
        segments = _segments(path)
        if any(not s for s in segments):
            return RouteMatch(None, frozenset())
        allowed: set[str] = set()
        found = self._walk(self._root, segments, 0, method, allowed)
        return RouteMatch(found, frozenset(allowed))

    def _walk(self, node: _Node, segments: list[str], index: int, method: str, allowed: set[str]) -> Route | None:
        if index == len(segments):
            if node.route is None:
                return None
            if method in node.route.methods or (method == "HEAD" and "GET" in node.route.methods):
                return node.route
            allowed.update(node.route.methods)
            return None
        child = node.literals.get(segments[index])
        if child is not None:
            found = self._walk(child, segments, index + 1, method, allowed)
            if found is not None:
                return found
        if node.param is not None:
            return self._walk(node.param, segments, index + 1, method, allowed)
        return None

    @classmethod
    def from_documents(cls, documents: Mapping[str, Mapping[str, Any]]) -> RouteTable:
        """Every `/v1/` operation of every service document (services in the order given)."""
        routes = []
        for service, document in documents.items():
            for template, item in (document.get("paths") or {}).items():
                if not template.startswith(PUBLIC_PREFIX):
                    continue
                methods = frozenset(m.upper() for m in item if m.upper() in HTTP_METHODS)
                if methods:
                    routes.append(Route(service, template, methods))
        return cls(routes)


class RouteTableLoader:
    """Fetches the services' OpenAPI documents and keeps the table current.

    Loaded at start-up; an unmatched request refreshes it (at most once per
    `REFRESH_INTERVAL_SECONDS`, concurrent callers share one refresh), so a service that was
    down at start, or that gained endpoints, is picked up without restarting the gateway.
    A service that cannot be reached keeps the routes it had.
    """

    def __init__(
        self,
        settings: Settings,
        client: httpx.AsyncClient,
        tokens: InternalTokenCache,
        services: Iterable[str] = DOMAIN_SERVICES,
    ) -> None:
        self.settings = settings
        self.client = client
        self.tokens = tokens
        self.services = tuple(services)
        self.documents: dict[str, dict[str, Any]] = {}
        self.table = RouteTable()
        self.version = 0
        self._next_refresh_at = 0.0
        self._lock = asyncio.Lock()

    @property
    def missing(self) -> list[str]:
        """Services whose document the gateway has never obtained."""
        return [s for s in self.services if s not in self.documents]

    async def _fetch(self, service: str) -> dict[str, Any] | None:
        url = f"{self.settings.url_for(service)}/openapi.json"  # type: ignore[arg-type]
        headers = {INTERNAL_TOKEN_HEADER: self.tokens.token_for(SYSTEM)}
        try:
            async with asyncio.timeout(FETCH_TIMEOUT_SECONDS):
                response = await self.client.get(url, headers=headers)
            response.raise_for_status()
            document: dict[str, Any] = response.json()
        except (httpx.HTTPError, TimeoutError, ValueError) as exc:
            log.warning("openapi_fetch_failed", service=service, error=type(exc).__name__)
            return None
        return document

    async def load(self) -> None:
        """Fetch every service's document now and rebuild the table."""
        results = await asyncio.gather(*(self._fetch(s) for s in self.services))
        changed = False
        for service, document in zip(self.services, results, strict=True):
            if document is not None and document != self.documents.get(service):
                self.documents[service] = document
                changed = True
        if changed or self.version == 0:
            self.table = RouteTable.from_documents({s: self.documents[s] for s in self.services if s in self.documents})
            self.version += 1
            log.info("route_table_loaded", routes=len(self.table.routes), missing=self.missing)

    async def refresh_if_due(self) -> bool:
        """Reload unless a refresh happened recently; True if the table may have changed."""
        if time.monotonic() < self._next_refresh_at:
            return False
        version = self.version
        async with self._lock:
            if time.monotonic() >= self._next_refresh_at:
                try:
                    await self.load()
                finally:
                    self._next_refresh_at = time.monotonic() + REFRESH_INTERVAL_SECONDS
        return self.version != version
