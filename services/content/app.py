"""The content service app. Its domain endpoints arrive in later issues."""

import httpx
from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.settings import Settings, get_settings
from services.content.db import kit_tables
from services.content.events import EVENT_HANDLERS


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    return create_service_app(
        "content",
        settings or get_settings(),
        kit_tables=kit_tables,
        routers=[],
        event_handlers=EVENT_HANDLERS,
        transport=transport,
    )
