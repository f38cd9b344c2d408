"""The CSAT survey after a resolution: ask content for a `survey` contact permit, then announce it.

A survey is a direct touch of the member, so it counts against the fatigue budget content
keeps per member (`POST /v1/contact-permits`, kind `survey`); no permit means no survey.

Order of steps, and why: the resolution commits first (the request's transaction, which
holds the ticket's row lock). Only then, outside any transaction, feedback asks content;
a granted permit is written back in a second, short transaction that locks the ticket,
checks it is still resolved and not yet surveyed, stamps `csat_requested_at` and writes
`feedback.csat_requested` to the outbox. No row lock or transaction is ever held across the
HTTP call. The cost: a process that dies between the resolution and the answer loses that
survey (no survey, never two), and a ticket reopened while content answers keeps its unused
permit.

Every attempt ends in one outcome, counted in `qunyun_feedback_csat_surveys_total`:
`requested`, content's refusal (`contact-budget-exhausted`, `quiet-hours`, `no-consent`),
`no-community` (budgets are per community, so a ticket without one gets no survey) or
`content-unavailable` (unreachable, timeout, 5xx or any other answer: no survey, not
retried). Logs name the ticket and the outcome, never the member.
"""

from __future__ import annotations

import uuid

import httpx
import structlog
from prometheus_client import Counter

from services.common.contracts.feedback import CsatRequested
from services.common.db import Database, utcnow
from services.common.events import emit
from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, InternalTokenCache
from services.common.observability import Metrics
from services.common.settings import Settings
from services.feedback.tickets.models import Ticket

log = structlog.get_logger("qunyun.feedback.surveys")

REQUESTED = "requested"
NO_COMMUNITY = "no-community"
UNAVAILABLE = "content-unavailable"
SKIPPED = "skipped"  # nothing to do: already surveyed, reopened, erased or gone
REFUSALS = frozenset({"contact-budget-exhausted", "quiet-hours", "no-consent"})
PROBLEMS = "https://qunyun.dev/problems/"


def _needs_survey(ticket: Ticket) -> bool:
    return ticket.status == "resolved" and ticket.csat_requested_at is None and ticket.member_erased_at is None


class Surveys:
    """Requests the survey for a resolved ticket (run after the resolution has committed)."""

    def __init__(self, db: Database, http: httpx.AsyncClient, settings: Settings, metrics: Metrics) -> None:
        self.db = db
        self.http = http
        self.settings = settings
        self.tokens = InternalTokenCache(settings)
        self.outcomes = Counter(
            "qunyun_feedback_csat_surveys_total",
            "CSAT survey requests after a resolution, by outcome",
            ["outcome"],
            registry=metrics.registry,
        )

    async def request(self, ticket_id: uuid.UUID) -> str:
        """Ask for a permit and, if granted, announce the survey; returns the outcome."""
        async with self.db.session() as session:
            ticket = await session.get(Ticket, ticket_id)
            if ticket is None or not _needs_survey(ticket):
                return SKIPPED
            member_id, community_id = ticket.member_id, ticket.community_id
        if community_id is None:
            return self._done(ticket_id, NO_COMMUNITY)
        outcome = await self._ask_content(member_id, community_id)
        if outcome != REQUESTED:
            return self._done(ticket_id, outcome)
        async with self.db.session() as session:
            ticket = await session.get(Ticket, ticket_id, with_for_update=True)
            if ticket is None or not _needs_survey(ticket):
                return self._done(ticket_id, SKIPPED)  # reopened (or erased) while content answered
            now = utcnow()
            ticket.csat_requested_at = now
            await emit(
                session,
                CsatRequested(
                    ticket_id=ticket.id, member_id=ticket.member_id, community_id=community_id, requested_at=now
                ),
            )
            await self.db.commit(session)
        return self._done(ticket_id, REQUESTED)

    async def _ask_content(self, member_id: uuid.UUID, community_id: uuid.UUID) -> str:
        try:
            response = await self.http.post(
                f"{self.settings.url_for('content')}/v1/contact-permits",
                json={"member_id": str(member_id), "community_id": str(community_id), "kind": "survey"},
                headers={INTERNAL_TOKEN_HEADER: self.tokens.token_for(SYSTEM)},
            )
        except httpx.HTTPError as exc:
            log.warning("csat_permit_unreachable", error=type(exc).__name__)
            return UNAVAILABLE
        if response.status_code == 201:
            return REQUESTED
        if response.status_code == 409:
            try:
                slug = str(response.json().get("type", "")).removeprefix(PROBLEMS)
            except ValueError:
                slug = ""
            if slug in REFUSALS:
                return slug
        log.warning("csat_permit_failed", status=response.status_code)
        return UNAVAILABLE

    def _done(self, ticket_id: uuid.UUID, outcome: str) -> str:
        self.outcomes.labels(outcome=outcome).inc()
        if outcome != REQUESTED:
            log.info("csat_survey_not_sent", ticket_id=str(ticket_id), outcome=outcome)
        return outcome
