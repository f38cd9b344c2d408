"""Partner webhooks: Standard Webhooks signing, durable retries, delivery log, replay, SSRF guard.

The gateway wires it with three calls: `webhook_routers()` (the admin API),
`WebhookRuntime` (fan-out handlers for `events_router` and the delivery worker in the
lifespan) and `register_webhook_catalogue(app)` (the OpenAPI `webhooks` section).
"""

from fastapi import APIRouter

from services.gateway.webhooks.catalogue import EVENT_TYPES, register_webhook_catalogue
from services.gateway.webhooks.router import router
from services.gateway.webhooks.runtime import WebhookRuntime


def webhook_routers() -> list[APIRouter]:
    """The admin API of webhook endpoints and deliveries."""
    return [router]


__all__ = ["EVENT_TYPES", "WebhookRuntime", "register_webhook_catalogue", "webhook_routers"]
