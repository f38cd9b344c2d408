"""The CSAT survey after a resolution: ask content for a `survey` contact permit, then announce it.

A survey is a direct touch of the member, so it counts against the fatigue budget content
keeps per member (`POST /v1/contact-permits`, kind `survey`); no permit means no survey.

The survey is a job (`services.common.jobs`), durable from the resolution on:

1. The resolution writes a pending `csat_surveys` row in its own transaction (`enqueue`),
   so a process that stops right after the commit delays the survey, never loses it.
2. A worker claims due rows in a short transaction (`FOR UPDATE SKIP LOCKED`, a lease and a
   claim token), commits, and only then asks content: no transaction or row lock is held
   across the HTTP call. After the resolving request has committed, its process claims that
   ticket's row at once (`request_now`); the periodic job on every replica (`job`) takes
   whatever is due: retries, and rows whose worker died (their lease expired).
3. The answer is recorded in a second short transaction that locks the ticket, checks the
   claim still holds (a worker that outlived its lease records nothing) and that the ticket
   still wants its survey, stamps `csat_requested_at` and writes `feedback.csat_requested`.
   So two replicas never announce one survey twice.

Outcomes, counted in `qunyun_feedback_csat_surveys_total{outcome}` (one per attempt):
`requested`; `quiet-hours` (asked again at content's `retry_at`); content unreachable,
timing out or answering 5xx/408/429 (`content-unavailable`: asked again with backoff, given
up `GIVE_UP_AFTER` past the resolution); final, recorded with the reason:
`contact-budget-exhausted`, `no-consent`, `content-rejected` (any other answer, such as an
unknown community), `no-community` (budgets are per community) and `skipped` (reopened,
erased, already surveyed). A ticket resolved again after a final outcome without a survey
is asked again. Logs name the ticket and the outcome, never the member.

A permit granted to a worker that then dies before recording it is asked for again once the
lease expires (content takes no idempotency key): at least once, so that rare case costs the
member one extra touch of budget, never a second survey.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

import httpx
import sqlalchemy as sa
import structlog
from prometheus_client import Counter
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.feedback import CsatRequested
from services.common.db import Database, table_of, utcnow
from services.common.events import emit
from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, InternalTokenCache
from services.common.jobs import DONE, PENDING, Backoff, JobQueue, PeriodicJob, QueueDepth
from services.common.observability import Metrics
from services.common.settings import Settings
from services.feedback.tickets.models import Ticket, csat_surveys

log = structlog.get_logger("qunyun.feedback.surveys")

SURVEYS = csat_surveys
TICKETS = table_of(Ticket)
QUEUE = JobQueue("feedback.csat_surveys", SURVEYS)

REQUESTED = "requested"
QUIET_HOURS = "quiet-hours"
NO_COMMUNITY = "no-community"
UNAVAILABLE = "content-unavailable"
REJECTED = "content-rejected"
SKIPPED = "skipped"  # nothing to do: already surveyed, reopened, erased or gone
LEASE_LOST = "lease-lost"  # this worker outlived its lease; the next holder records the outcome
REFUSALS = frozenset({"contact-budget-exhausted", QUIET_HOURS, "no-consent"})
RETRYABLE_STATUS = frozenset({408, 425, 429})
PROBLEMS = "https://qunyun.dev/problems/"

BACKOFF = Backoff(base=5.0, cap=900.0)  # content unavailable: 2.5-5 s, 5-10 s, ... up to 15 min
GIVE_UP_AFTER = timedelta(hours=24)  # a survey a day after the resolution is not worth sending


def _needs_survey(ticket: Ticket) -> bool:
    return ticket.status == "resolved" and ticket.csat_requested_at is None and ticket.member_erased_at is None


async def enqueue(session: AsyncSession, ticket: Ticket, now: datetime) -> None:
    """Owe the owner of a ticket being resolved a survey (in the resolution's transaction).

    A row already waiting keeps its time (a quiet-hours retry stays at `retry_at`); one that
    ended without a survey is due again."""
    if ticket.csat_requested_at is not None or ticket.member_erased_at is not None:
        return
    fresh = {"status": PENDING, "attempts": 0, "next_attempt_at": now, "enqueued_at": now, "updated_at": now}
    insert = postgresql.insert(SURVEYS).values(ticket_id=ticket.id, **fresh)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[SURVEYS.c.ticket_id],
            set_={**fresh, "outcome": None, "permit_id": None, "last_error": None},
            where=SURVEYS.c.status == DONE,
        )
    )


@dataclass(frozen=True)
class Due:
    """One claimed survey and what asking for it needs."""

    ticket_id: uuid.UUID
    member_id: uuid.UUID
    community_id: uuid.UUID | None
    wanted: bool  # the ticket, as read at the claim, still wants its survey
    attempts: int
    enqueued_at: datetime


@dataclass(frozen=True)
class Answer:
    outcome: str
    retry_at: datetime | None = None
    permit_id: uuid.UUID | None = None
    error: str | None = None


class Surveys:
    """Asks content for the survey permits that are due, and records the answers."""

    NAME = "feedback.csat_surveys"

    def __init__(
        self,
        db: Database,
        http: httpx.AsyncClient,
        settings: Settings,
        metrics: Metrics | None = None,
        *,
        batch: int = 50,
        concurrency: int = 8,
        clock: Callable[[], datetime] = utcnow,
    ) -> None:
        self.db = db
        self.http = http
        self.settings = settings
        self.metrics = metrics
        self.tokens = InternalTokenCache(settings)
        self.batch = batch
        self.concurrency = concurrency
        self.clock = clock
        # Longer than any call to content can take, so a live worker keeps its claim.
        self.lease_seconds = max(60.0, 3 * settings.upstream_timeout_seconds)
        self.outcomes = Counter(
            "qunyun_feedback_csat_surveys_total",
            "CSAT survey attempts after a resolution, by outcome",
            ["outcome"],
            registry=metrics.registry if metrics is not None else None,
        )

    def job(self) -> PeriodicJob:
        """The periodic job every replica runs: retries and surveys whose worker died."""
        job = PeriodicJob(
            self.NAME,
            self.run_due,
            interval_seconds=self.settings.scheduler_interval_ms / 1000,
            metrics=self.metrics,
            more_while_busy=True,
        )
        job.metrics.watch(self.depth)
        return job

    async def depth(self) -> QueueDepth:
        async with self.db.session() as session:
            return await QUEUE.depth(session, utcnow())

    async def run_due(self, now: datetime | None = None) -> int:
        """Ask for every survey due at `now` (a batch); returns how many were claimed."""
        return len(await self._run(now or self.clock()))

    async def request_now(self, ticket_id: uuid.UUID) -> str | None:
        """Ask at once for this ticket's survey (after its resolution committed); the outcome,
        or None when there was nothing due to claim (another worker holds it, or none owed)."""
        outcomes = await self._run(self.clock(), only=ticket_id)
        return outcomes[0] if outcomes else None

    async def _run(self, now: datetime, only: uuid.UUID | None = None) -> list[str]:
        token, claimed = await self._claim(now, only)
        if not claimed:
            return []
        gate = asyncio.Semaphore(self.concurrency)

        async def one(due: Due) -> str:
            async with gate:
                return await self._attempt(token, due, now)

        results = await asyncio.gather(*(one(due) for due in claimed), return_exceptions=True)
        outcomes: list[str] = []
        for due, result in zip(claimed, results, strict=True):
            if isinstance(result, BaseException):  # its lease runs out, then it is claimed again
                log.error("csat_survey_failed", ticket_id=str(due.ticket_id), error=type(result).__name__)
                continue
            outcomes.append(result)
        return outcomes

    async def _claim(self, now: datetime, only: uuid.UUID | None) -> tuple[uuid.UUID, list[Due]]:
        s, t = SURVEYS, TICKETS
        candidates = sa.select(s.c.ticket_id).order_by(s.c.next_attempt_at).limit(self.batch)
        if only is not None:
            candidates = candidates.where(s.c.ticket_id == only)
        async with self.db.session() as session:
            claim = await QUEUE.claim(session, candidates, now=now, lease_seconds=self.lease_seconds)
            if not claim:
                await session.rollback()
                return claim.token, []
            rows = await session.execute(
                sa.select(
                    s.c.ticket_id,
                    s.c.attempts,
                    s.c.enqueued_at,
                    t.c.member_id,
                    t.c.community_id,
                    sa.and_(
                        t.c.status == "resolved", t.c.csat_requested_at.is_(None), t.c.member_erased_at.is_(None)
                    ).label("wanted"),
                )
                .join(t, t.c.id == s.c.ticket_id)
                .where(s.c.ticket_id.in_([key.ticket_id for key in claim.keys]))
            )
            claimed = [
                Due(row.ticket_id, row.member_id, row.community_id, bool(row.wanted), row.attempts, row.enqueued_at)
                for row in rows
            ]
            await session.commit()
        return claim.token, claimed

    async def _attempt(self, token: uuid.UUID, due: Due, now: datetime) -> str:
        if not due.wanted:
            answer = Answer(SKIPPED)
        elif due.community_id is None:
            answer = Answer(NO_COMMUNITY)
        else:
            answer = await self._ask_content(due.member_id, due.community_id)
        return await self._record(token, due, answer, now)

    async def _ask_content(self, member_id: uuid.UUID, community_id: uuid.UUID) -> Answer:
        try:
            response = await self.http.post(
                f"{self.settings.url_for('content')}/v1/contact-permits",
                json={"member_id": str(member_id), "community_id": str(community_id), "kind": "survey"},
                headers={INTERNAL_TOKEN_HEADER: self.tokens.token_for(SYSTEM)},
            )
        except httpx.HTTPError as exc:
            log.warning("csat_permit_unreachable", error=type(exc).__name__)
            return Answer(UNAVAILABLE, error=f"unreachable: {type(exc).__name__}")
        body = _json(response)
        if response.status_code == 201:
            return Answer(REQUESTED, permit_id=_uuid(body.get("permit_id")))
        slug = str(body.get("type", "")).removeprefix(PROBLEMS)
        if response.status_code == 409 and slug in REFUSALS:
            return Answer(slug, retry_at=_instant(body.get("retry_at")) if slug == QUIET_HOURS else None)
        log.warning("csat_permit_failed", status=response.status_code)
        error = f"HTTP {response.status_code} {slug}".strip()
        if response.status_code >= 500 or response.status_code in RETRYABLE_STATUS:
            return Answer(UNAVAILABLE, error=error)
        return Answer(REJECTED, error=error)  # the same question would get the same answer

    async def _record(self, token: uuid.UUID, due: Due, answer: Answer, now: datetime) -> str:
        """Write the outcome if this worker still holds the claim (one short transaction)."""
        async with self.db.session() as session:
            # The ticket first, as a resolution does (ticket, then its survey row): no deadlock.
            ticket = await session.get(Ticket, due.ticket_id, with_for_update=True)
            wanted = ticket is not None and _needs_survey(ticket)
            outcome = answer.outcome
            if outcome == REQUESTED and not wanted:
                outcome = SKIPPED  # reopened (or erased) while content answered; the permit goes unused
            values = self._next_state(due, answer, outcome, now)
            if outcome == SKIPPED and wanted:  # resolved again since the claim: ask afresh
                values = {"status": PENDING, "next_attempt_at": now, "outcome": None}
            held = await session.execute(
                SURVEYS.update()
                .where(QUEUE.held(token), SURVEYS.c.ticket_id == due.ticket_id)
                .values(lease_until=None, claim_token=None, updated_at=now, **values)
                .returning(SURVEYS.c.ticket_id)
            )
            if held.first() is None:
                await session.rollback()
                log.warning("csat_survey_lease_lost", ticket_id=str(due.ticket_id))
                return self._count(due.ticket_id, LEASE_LOST)
            if outcome == REQUESTED and ticket is not None and due.community_id is not None:
                ticket.csat_requested_at = now
                await emit(
                    session,
                    CsatRequested(
                        ticket_id=ticket.id,
                        member_id=ticket.member_id,
                        community_id=due.community_id,
                        requested_at=now,
                    ),
                )
            await self.db.commit(session)
        return self._count(due.ticket_id, outcome)

    def _next_state(self, due: Due, answer: Answer, outcome: str, now: datetime) -> dict[str, object]:
        attempts = due.attempts + 1
        if outcome == QUIET_HOURS:
            retry_at = answer.retry_at or now + timedelta(seconds=BACKOFF.delay(attempts) or 0)
            return {"status": PENDING, "attempts": attempts, "next_attempt_at": retry_at, "outcome": outcome}
        if outcome == UNAVAILABLE:
            retry_at = now + timedelta(seconds=BACKOFF.delay(attempts) or 0)
            if retry_at - due.enqueued_at <= GIVE_UP_AFTER:
                return {
                    "status": PENDING,
                    "attempts": attempts,
                    "next_attempt_at": retry_at,
                    "outcome": outcome,
                    "last_error": answer.error,
                }
        done: dict[str, object] = {"status": DONE, "attempts": attempts, "outcome": outcome}
        if answer.error:
            done["last_error"] = answer.error
        if outcome == REQUESTED:
            done["permit_id"] = answer.permit_id
        return done

    def _count(self, ticket_id: uuid.UUID, outcome: str) -> str:
        self.outcomes.labels(outcome=outcome).inc()
        if outcome != REQUESTED:
            log.info("csat_survey_not_sent", ticket_id=str(ticket_id), outcome=outcome)
        return outcome


def _json(response: httpx.Response) -> dict[str, object]:
    try:
        body = response.json()
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def _uuid(value: object) -> uuid.UUID | None:
    try:
        return uuid.UUID(str(value)) if value else None
    except ValueError:
        return None


def _instant(value: object) -> datetime | None:
    """Content's `retry_at` (RFC 3339), or None if absent or unreadable."""
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None
