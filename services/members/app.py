"""The members service app: communities, members, activity, segments, analytics, privacy."""

import httpx
from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.settings import Settings, get_settings
from services.members.db import kit_tables
from services.members.events import EVENT_HANDLERS


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    return create_service_app(
        "members",
        settings or get_settings(),
        kit_tables=kit_tables,
        routers=[],
        event_handlers=EVENT_HANDLERS,
        transport=transport,
        description="Communities, members, activity, segments, analytics and privacy.",
    )
