"""The members service app: communities, members, activity, segments, analytics, privacy."""

import httpx
from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.settings import Settings, get_settings
from services.members.activity.router import router as activity_router
from services.members.analytics.router import router as analytics_router
from services.members.communities.router import router as communities_router
from services.members.db import kit_tables
from services.members.events import EVENT_HANDLERS
from services.members.memberships.router import router as memberships_router
from services.members.privacy.router import router as privacy_router
from services.members.profiles.router import router as profiles_router
from services.members.segments.router import router as segments_router


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    return create_service_app(
        "members",
        settings or get_settings(),
        kit_tables=kit_tables,
        routers=[
            communities_router,
            profiles_router,
            privacy_router,
            memberships_router,
            activity_router,
            segments_router,
            analytics_router,
        ],
        event_handlers=EVENT_HANDLERS,
        transport=transport,
        description="Communities, members, activity, segments, analytics and privacy.",
    )
