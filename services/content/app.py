"""The content service app: posts and their review (with the compliance check), publishing
policy, the publisher, best times, polls and the per-member contact budget."""

import httpx
from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.jobs import PeriodicJob
from services.common.settings import Settings, get_settings
from services.content.analytics.router import router as analytics_router
from services.content.communities.service import CommunityZones
from services.content.compliance.router import router as compliance_router
from services.content.contact.router import router as contact_router
from services.content.db import kit_tables
from services.content.events import EVENT_HANDLERS, apply_new_events
from services.content.metrics import ContentMetrics
from services.content.policy.router import router as policy_router
from services.content.polls.router import router as polls_router
from services.content.posts.publisher import publisher_job
from services.content.posts.router import router as posts_router
from services.content.privacy.router import router as privacy_router


async def content_state(app: FastAPI) -> None:
    """What the routes share: the zone cache (over the shared client) and the metrics."""
    zones = CommunityZones(app.state.http, app.state.settings, app.state.db)
    app.state.zones = zones
    app.state.on_test_reset = zones.clear
    app.state.content_metrics = ContentMetrics(app.state.metrics, app.state.db)


def publisher_worker(app: FastAPI) -> PeriodicJob:
    return publisher_job(app.state.db, app.state.settings, app.state.metrics)


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    return create_service_app(
        "content",
        settings or get_settings(),
        kit_tables=kit_tables,
        routers=[
            posts_router,
            polls_router,
            policy_router,
            contact_router,
            privacy_router,
            analytics_router,
            compliance_router,
        ],
        event_handlers=EVENT_HANDLERS,
        batch_handler=apply_new_events,
        transport=transport,
        on_startup=[content_state],
        background=[publisher_worker],
        description=(
            "Posts and their review (compliance check), publishing policy, the publisher, best times, polls, "
            "contact budget."
        ),
    )
