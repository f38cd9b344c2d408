"""`create_service_app`: what every domain service has in common.

A service app gets its settings, database, outbox and relay, one shared HTTP client,
problem responses for every error, request ids and JSON logs, `/healthz`, `/readyz`,
`/metrics`, an internal-token-protected `/openapi.json` (the gateway builds its route
table and the public document from it) and `/internal/events` for the events it consumes.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from typing import Any

import aiohttp
import httpx
from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse
from fastapi.routing import APIRoute
from httpx_aiohttp import AiohttpTransport
from starlette.responses import Response

from services.common.contracts import SUBSCRIPTIONS, Subscriptions, check_handlers
from services.common.db import Database
from services.common.events import BatchHandler, EventHandlers, KitTables, Outbox, Relay, events_router
from services.common.identity import Caller, InternalAuthMiddleware
from services.common.jobs import Housekeeping, Purge, kit_purges
from services.common.observability import Metrics, RequestContextMiddleware, configure_logging
from services.common.problems import ServiceUnavailable, install_problem_handlers
from services.common.runtime import freeze_startup_heap
from services.common.settings import ServiceName, Settings

LifespanHook = Callable[[FastAPI], Awaitable[None]]


def aiohttp_transport(limits: httpx.Limits) -> httpx.AsyncBaseTransport:
    """httpx's API over aiohttp's connection pool: several times the throughput of httpx's own
    transport on a gateway hop (figures in tests/bench/gateway_vs_direct.py)."""

    def session() -> aiohttp.ClientSession:
        # Created on first use, inside the running loop. No cookie jar: one session serves
        # every caller, so a cookie set by a service must never ride along on the next request.
        connector = aiohttp.TCPConnector(
            limit=limits.max_connections or 0,
            keepalive_timeout=limits.keepalive_expiry or 5.0,
        )
        return aiohttp.ClientSession(connector=connector, cookie_jar=aiohttp.DummyCookieJar())

    return AiohttpTransport(limits=limits, client=session)


def build_http_client(
    settings: Settings, transport: httpx.AsyncBaseTransport | None = None, *, max_connections: int = 200
) -> httpx.AsyncClient:
    """The process's one shared HTTP client: pooled, with timeouts on every call.

    Production uses the aiohttp transport; tests pass their own (in-process apps)."""
    timeout = httpx.Timeout(settings.upstream_timeout_seconds, connect=settings.upstream_connect_timeout_seconds)
    limits = httpx.Limits(max_connections=max_connections, max_keepalive_connections=max_connections)
    return httpx.AsyncClient(transport=transport or aiohttp_transport(limits), timeout=timeout, limits=limits)


def include_routes(app: FastAPI, router: APIRouter) -> None:
    """Add `router`'s routes to the app's own route table, as `app.get(...)` would.

    FastAPI (0.16x) keeps an included router as one nested route: a request tries every
    route of each router before its own, then its router matches it a second time. On
    members' primary-key read that was about 7% of the service's CPU. Our routers carry their prefix,
    tags and dependencies on each route, so nothing is lost; what a flat table does not
    follow is `app.dependency_overrides`, which nothing here uses."""
    if any(not isinstance(route, APIRoute) for route in router.routes):
        raise TypeError(f"{router.prefix or 'a router'}: only plain API routes can be added flat")
    app.router.routes.extend(router.routes)


def health_router() -> APIRouter:
    router = APIRouter(tags=["health"])

    @router.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        """The process is alive."""
        return {"status": "ok"}

    @router.get("/readyz", include_in_schema=False)
    async def readyz(request: Request) -> dict[str, str]:
        """The process can reach its database."""
        try:
            await request.app.state.db.ping()
        except Exception as exc:
            raise ServiceUnavailable("The database is not reachable.") from exc
        return {"status": "ready"}

    @router.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> Response:
        """Prometheus metrics of this process."""
        registry: Metrics = request.app.state.metrics
        await registry.refresh()
        return registry.render()

    return router


def install_common(app: FastAPI, service: str, settings: Settings) -> Metrics:
    """Problem handlers, request context middleware and health routes."""
    metrics = Metrics(service)
    app.state.metrics = metrics
    app.state.settings = settings
    install_problem_handlers(app)
    app.add_middleware(RequestContextMiddleware, metrics=metrics)
    include_routes(app, health_router())
    return metrics


def create_service_app(
    service: ServiceName,
    settings: Settings,
    *,
    kit_tables: KitTables,
    routers: Sequence[APIRouter],
    event_handlers: EventHandlers | None = None,
    batch_handler: BatchHandler | None = None,
    subscriptions: Subscriptions = SUBSCRIPTIONS,
    transport: httpx.AsyncBaseTransport | None = None,
    on_startup: Sequence[LifespanHook] = (),
    background: Sequence[Callable[[FastAPI], Any]] = (),
    purges: Sequence[Purge] = (),
    title: str | None = None,
    description: str = "",
) -> FastAPI:
    """A domain service: its routers behind the internal token, plus the common kit.

    `background` factories get the app once it is ready and return an object with
    `start()` / `await stop()` (a `jobs.PeriodicJob`, say); the relay and the housekeeping
    job are always there. `purges` are the service's own, run by housekeeping after the
    kit's. `batch_handler` (see `events.inbox`) gets each batch's new events in one call.
    The handlers must be exactly the service's line of `subscriptions` (the kit's table
    unless a test gives its own), or the app refuses to be built.
    """
    configure_logging(settings.log_level, settings.log_json)
    event_handlers = event_handlers or {}
    check_handlers(service, subscriptions, event_handlers.keys(), batch_handler=batch_handler is not None)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        outbox = Outbox(kit_tables, service, settings, subscriptions=subscriptions)
        db = Database(settings.database_url_for(service), settings, info={"outbox": outbox})
        http = build_http_client(settings, transport)
        app.state.db, app.state.outbox, app.state.http = db, outbox, http
        app.state.relay = Relay(db, outbox, settings, http, metrics=app.state.metrics)
        app.state.housekeeping = Housekeeping(
            db, kit_tables, settings, [*kit_purges(kit_tables, settings), *purges], metrics=app.state.metrics
        )
        async with AsyncExitStack() as stack:
            stack.push_async_callback(db.dispose)
            stack.push_async_callback(http.aclose)
            for hook in on_startup:
                await hook(app)
            workers = [app.state.relay, app.state.housekeeping, *(factory(app) for factory in background)]
            app.state.workers = workers
            if settings.relay_enabled:
                for worker in workers:
                    worker.start()
                    stack.push_async_callback(worker.stop)
            freeze_startup_heap()
            yield

    app = FastAPI(
        title=title or f"Qunyun {service}",
        description=description,
        version="1.0.0",
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url=None,
    )
    app.add_middleware(InternalAuthMiddleware, settings=settings)
    install_common(app, service, settings)
    for router in routers:
        include_routes(app, router)
    include_routes(app, events_router(kit_tables, event_handlers, batch_handler))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(_caller: Caller) -> JSONResponse:
        """This service's OpenAPI document (for the gateway)."""
        return JSONResponse(app.openapi())

    return app
