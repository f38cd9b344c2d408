"""The feedback service app: tickets with SLA clocks, comments, CSAT, support analytics, suggestions,
community rules and moderation."""

import httpx
from fastapi import FastAPI

from services.common.app import create_service_app
from services.common.jobs import PeriodicJob
from services.common.settings import Settings, get_settings
from services.feedback.analytics.router import router as analytics_router
from services.feedback.db import kit_tables
from services.feedback.events import EVENT_HANDLERS
from services.feedback.moderation.reports.router import router as reports_router
from services.feedback.moderation.rules.router import router as rules_router
from services.feedback.moderation.sanctions.expiry import sanction_expiry_job
from services.feedback.moderation.sanctions.router import router as sanctions_router
from services.feedback.privacy.router import router as privacy_router
from services.feedback.sla.job import sla_job
from services.feedback.sla.router import router as sla_router
from services.feedback.suggestions.router import router as suggestions_router
from services.feedback.tickets.config import SupportConfigCache
from services.feedback.tickets.router import router as tickets_router
from services.feedback.tickets.surveys import Surveys


def sla_worker(app: FastAPI) -> PeriodicJob:
    return sla_job(app.state.db, app.state.settings, app.state.metrics)


def survey_worker(app: FastAPI) -> PeriodicJob:
    surveys: Surveys = app.state.surveys
    return surveys.job()


def sanction_expiry_worker(app: FastAPI) -> PeriodicJob:
    return sanction_expiry_job(app.state.db, app.state.settings, app.state.metrics)


async def init_state(app: FastAPI) -> None:
    known: set[str] = set()
    app.state.known_agents = known  # staff ids already in the agent rotation
    configs = SupportConfigCache()
    app.state.support_configs = configs

    def reset() -> None:
        known.clear()
        configs.clear()

    app.state.on_test_reset = reset
    app.state.surveys = Surveys(app.state.db, app.state.http, app.state.settings, app.state.metrics)


def create_app(settings: Settings | None = None, transport: httpx.AsyncBaseTransport | None = None) -> FastAPI:
    return create_service_app(
        "feedback",
        settings or get_settings(),
        kit_tables=kit_tables,
        routers=[
            tickets_router,
            sla_router,
            analytics_router,
            suggestions_router,
            rules_router,
            reports_router,
            sanctions_router,
            privacy_router,
        ],
        event_handlers=EVENT_HANDLERS,
        transport=transport,
        on_startup=[init_state],
        background=[sla_worker, survey_worker, sanction_expiry_worker],
        description="Tickets with SLA clocks and business hours, comments and internal notes, CSAT, "
        "support analytics, the suggestion board, and community rules and moderation (reports, strikes, "
        "sanctions, appeals).",
    )
