"""The gateway: the one public door (auth, rate limits, routing, one OpenAPI document).

Its own routes (auth, access, later composed views) are ordinary FastAPI routes; any
other `/v1` request falls through to the proxy (`app.router.default`), which forwards
it to the service owning the path template. Middleware, outermost first: request id
and metrics, then rate limits (which identify the caller once for everyone), then the
proxy's fast path (`/v1` paths no gateway route claims skip the router's scan).
"""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI, Request
from starlette.responses import Response

from services.common.app import aiohttp_transport, build_http_client, include_routes, install_common
from services.common.contracts import SUBSCRIPTIONS, check_handlers
from services.common.db import Database
from services.common.events import Outbox, events_router
from services.common.identity import InternalTokenCache
from services.common.jobs import Housekeeping, kit_purges
from services.common.observability import configure_logging
from services.common.runtime import freeze_startup_heap
from services.common.settings import Settings, get_settings
from services.gateway.auth import auth_routers
from services.gateway.auth.admin import start_auth
from services.gateway.auth.identify import identify_caller
from services.gateway.compose import install_composed_views
from services.gateway.console import install_console
from services.gateway.db import kit_tables
from services.gateway.docs import install_docs
from services.gateway.events import GatewayEvents
from services.gateway.openapi import MergedOpenAPI
from services.gateway.proxy import Proxy, ProxyFastPath
from services.gateway.ratelimit import RateLimitMiddleware, RateLimitStore, RedisRateLimitStore, build_rate_limit_store
from services.gateway.routing import RouteTableLoader
from services.gateway.webhooks import WebhookRuntime, register_webhook_catalogue, webhook_routers
from services.gateway.webhooks.retention import webhook_purges


def create_app(
    settings: Settings | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
    *,
    rate_limit_store: RateLimitStore | None = None,
) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    webhooks = WebhookRuntime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        outbox = Outbox(kit_tables, "gateway", settings)
        app.state.db = Database(settings.database_url_for("gateway"), settings, info={"outbox": outbox})
        upstream = transport or aiohttp_transport(httpx.Limits(max_connections=200, max_keepalive_connections=200))
        app.state.http = http = build_http_client(settings, upstream)
        app.state.internal_tokens = tokens = InternalTokenCache(settings)
        app.state.routes = loader = RouteTableLoader(settings, http, tokens)
        app.state.openapi = MergedOpenAPI(app, loader, settings)
        app.state.proxy = app.router.default = Proxy(settings, loader, upstream, tokens)
        await start_auth(app)
        await webhooks.start(app.state.db, metrics=app.state.metrics)
        purges = [*kit_purges(kit_tables, settings), *webhook_purges(settings)]
        app.state.housekeeping = housekeeping = Housekeeping(
            app.state.db, kit_tables, settings, purges, metrics=app.state.metrics
        )
        if settings.relay_enabled:
            housekeeping.start()
        try:
            await loader.load()  # services still down are fetched again on demand
            freeze_startup_heap()
            yield
        finally:
            await housekeeping.stop()
            await webhooks.stop()
            await app.state.http.aclose()
            await app.state.db.dispose()
            if isinstance(store, RedisRateLimitStore):
                await store.aclose()

    app = FastAPI(title="Qunyun", version="1.0.0", lifespan=lifespan, openapi_url=None, docs_url=None, redoc_url=None)
    # The seam to authentication (see services.gateway.callers); tests may replace it.
    app.state.identify_caller = identify_caller
    app.state.rate_limits = store = rate_limit_store or build_rate_limit_store(settings)
    app.state.webhooks = webhooks
    app.add_middleware(ProxyFastPath)
    app.add_middleware(RateLimitMiddleware, settings=settings, store=store)
    install_common(app, "gateway", settings)  # its request-id middleware goes outermost
    if isinstance(store, RedisRateLimitStore):
        store.register_metrics(app.state.metrics.registry)
    # Composed views first: the overview is read on every member page, and a request tries the
    # routes in order (none of these paths overlap, so the order changes nothing else).
    install_composed_views(app, settings)
    for router in auth_routers():
        include_routes(app, router)
    for router in webhook_routers():
        include_routes(app, router)
    register_webhook_catalogue(app)
    # Every event is fanned out to the subscribed partner webhooks; erasures revoke member tokens.
    check_handlers("gateway", SUBSCRIPTIONS, (), batch_handler=True)
    include_routes(app, events_router(kit_tables, {}, batch_handler=GatewayEvents(app, webhooks.fanout)))

    @app.get("/openapi.json", include_in_schema=False)
    async def openapi_document(request: Request) -> Response:
        """The merged OpenAPI document of the whole public API."""
        merged: MergedOpenAPI = request.app.state.openapi
        return Response(await merged.rendered(), media_type="application/json")

    install_docs(app)
    install_console(app)
    return app
