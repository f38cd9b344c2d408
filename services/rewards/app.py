"""The rewards service app: points ledger, earning program, badges, catalog, leaderboards."""

import httpx
from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.jobs import PeriodicJob
from services.common.settings import Settings, get_settings
from services.rewards.analytics.router import router as analytics_router
from services.rewards.badges.router import router as badges_router
from services.rewards.catalog.router import router as catalog_router
from services.rewards.db import kit_tables
from services.rewards.earning.retention import daily_earnings_purge
from services.rewards.events import EVENT_HANDLERS, apply_new_events
from services.rewards.leaderboards.router import router as leaderboards_router
from services.rewards.points.expiry import expiry_job
from services.rewards.points.router import router as points_router
from services.rewards.privacy.router import router as privacy_router
from services.rewards.program.router import router as program_router


def expiry_worker(app: FastAPI) -> PeriodicJob:
    return expiry_job(app.state.db, app.state.settings, app.state.metrics)


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    settings = settings or get_settings()
    return create_service_app(
        "rewards",
        settings,
        kit_tables=kit_tables,
        routers=[
            program_router,
            points_router,
            badges_router,
            catalog_router,
            leaderboards_router,
            privacy_router,
            analytics_router,
        ],
        event_handlers=EVENT_HANDLERS,
        batch_handler=apply_new_events,  # earning is set-based per batch (see events.py)
        transport=transport,
        background=[expiry_worker],
        purges=[daily_earnings_purge(settings)],
        description="Points ledger, earning rules, streaks, levels, badges, catalog, redemptions, leaderboards.",
    )
