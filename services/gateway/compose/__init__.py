"""Composed views: answers the gateway builds from several services' parts (API.md,
"Gateway: composed views"). `install_composed_views(app)` adds their routes and state."""

from fastapi import FastAPI

from services.common.app import include_routes
from services.common.settings import Settings
from services.gateway.compose.dashboard import DashboardCache
from services.gateway.compose.router import router


def install_composed_views(app: FastAPI, settings: Settings) -> None:
    app.state.dashboard_cache = DashboardCache(settings.dashboard_cache_seconds, max_entries=1000)
    include_routes(app, router)
