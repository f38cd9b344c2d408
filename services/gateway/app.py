"""The gateway: the one public door (auth, rate limits, routing, one OpenAPI document)."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import httpx
from fastapi import FastAPI

from services.common.app import build_http_client, install_common
from services.common.db import Database
from services.common.events import Outbox, events_router
from services.common.observability import configure_logging
from services.common.settings import Settings, get_settings
from services.gateway.auth import auth_routers
from services.gateway.db import kit_tables
from services.gateway.webhooks import WebhookRuntime, register_webhook_catalogue, webhook_routers


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level, settings.log_json)
    webhooks = WebhookRuntime(settings)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        outbox = Outbox(kit_tables, "gateway", settings)
        app.state.db = Database(settings.database_url_for("gateway"), settings, info={"outbox": outbox})
        app.state.http = build_http_client(settings, transport)
        await webhooks.start(app.state.db)
        try:
            yield
        finally:
            await webhooks.stop()
            await app.state.http.aclose()
            await app.state.db.dispose()

    app = FastAPI(title="Qunyun", version="1.0.0", lifespan=lifespan)
    install_common(app, "gateway", settings)
    app.state.webhooks = webhooks
    for router in auth_routers():
        app.include_router(router)
    for router in webhook_routers():
        app.include_router(router)
    register_webhook_catalogue(app)
    # Partner webhooks: every event is fanned out to the subscribed endpoints.
    app.include_router(events_router(kit_tables, webhooks.event_handlers()))
    return app
