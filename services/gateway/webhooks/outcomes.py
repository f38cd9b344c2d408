"""What an attempt's outcome does: the attempt's row, the delivery's next state (the retry
schedule with jitter, a 429/503's Retry-After), and the endpoint's health (failing since when,
disabled once, with its notice). The delivery worker (`delivery.py`) claims and sends; these
are its plain rules and its one write per batch of outcomes.
"""

from __future__ import annotations

import email.utils
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import structlog

from services.common.db import Database, new_id, utcnow
from services.common.jobs import Backoff
from services.gateway.webhooks.models import FAILED, PENDING, SENDING, SUCCEEDED, attempts, deliveries, endpoints
from services.gateway.webhooks.service import DISABLED_FAILING, DISABLED_GONE, disabled_notice, park_deliveries

log = structlog.get_logger("qunyun.webhooks")

MAX_RETRY_AFTER_SECONDS = 86400


@dataclass(frozen=True)
class Job:
    """One claimed attempt."""

    delivery_id: uuid.UUID
    claim_token: uuid.UUID
    endpoint_id: uuid.UUID
    url: str
    message_id: uuid.UUID
    payload: str
    trigger: str
    round_attempts: int
    secrets: tuple[str, ...]


@dataclass(frozen=True)
class Outcome:
    job: Job
    attempted_at: datetime
    latency_ms: int
    status_code: int | None = None
    error: str | None = None
    response_body: str | None = None
    retry_after: float | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300

    @property
    def gone(self) -> bool:
        return self.status_code == 410


def retry_after_seconds(value: str | None, now: float | None = None) -> float | None:
    """Retry-After as seconds (delta-seconds or HTTP-date), capped at a day."""
    if not value:
        return None
    value = value.strip()
    if value.isdigit():
        return float(min(int(value), MAX_RETRY_AFTER_SECONDS))
    try:
        moment = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment.timestamp() - (now if now is not None else time.time())
    return max(0.0, min(delta, MAX_RETRY_AFTER_SECONDS))


def next_delay(delays: Sequence[int], round_attempts: int, retry_after: float | None) -> float | None:
    """Seconds until the next attempt after `round_attempts` failed ones; None = exhausted."""
    delay = Backoff(schedule=delays, jitter=(0.9, 1.1)).delay(round_attempts)  # jitter spreads retry storms
    if delay is None:
        return None
    return max(delay, retry_after or 0.0)


async def record_outcomes(
    db: Database, outcomes: Sequence[Outcome], *, delays: Sequence[int], disable_after_seconds: float
) -> int:
    """Store a batch of outcomes: the attempts, each delivery's next state (guarded by its
    claim token: a lease that expired and was claimed again is not overwritten), and the
    endpoints' health, disabling those failing for `disable_after_seconds` or gone.
    Returns how many disabled-endpoint notices it queued."""
    if not outcomes:
        return 0
    now = utcnow()
    attempt_rows = []
    updates = []
    for outcome in sorted(outcomes, key=lambda o: o.job.delivery_id):
        job = outcome.job
        round_attempts = job.round_attempts + 1
        if outcome.succeeded:
            status, next_at = SUCCEEDED, None
        else:
            delay = None if outcome.gone else next_delay(delays, round_attempts, outcome.retry_after)
            status = FAILED if delay is None else PENDING
            next_at = None if delay is None else now + timedelta(seconds=delay)
        attempt_rows.append(
            {
                "id": new_id(),
                "delivery_id": job.delivery_id,
                "attempted_at": outcome.attempted_at,
                "trigger": job.trigger,
                "status_code": outcome.status_code,
                "latency_ms": outcome.latency_ms,
                "error": outcome.error,
                "response_body": outcome.response_body,
            }
        )
        updates.append(
            {
                "b_id": job.delivery_id,
                "b_token": job.claim_token,
                "b_status": status,
                "b_next": next_at,
                "b_round": round_attempts,
                "b_at": outcome.attempted_at,
                "b_code": outcome.status_code,
                "b_error": outcome.error,
                "b_delivered": outcome.attempted_at if outcome.succeeded else None,
            }
        )
    latest: dict[uuid.UUID, Outcome] = {}
    for outcome in sorted(outcomes, key=lambda o: o.attempted_at):
        latest[outcome.job.endpoint_id] = outcome
    healthy = sorted(eid for eid, o in latest.items() if o.succeeded)
    failing = sorted(eid for eid, o in latest.items() if not o.succeeded)
    gone = sorted({o.job.endpoint_id for o in outcomes if o.gone})
    first_failure = min((o.attempted_at for o in outcomes if not o.succeeded), default=now)

    d = deliveries
    async with db.session() as session:
        await session.execute(attempts.insert(), attempt_rows)
        await session.execute(
            d.update()
            .where(
                d.c.id == sa.bindparam("b_id"),
                d.c.claim_token == sa.bindparam("b_token"),
                d.c.status == SENDING,
            )
            .values(
                status=sa.bindparam("b_status"),
                next_attempt_at=sa.bindparam("b_next"),
                round_attempts=sa.bindparam("b_round"),
                attempt_count=d.c.attempt_count + 1,
                lease_until=None,
                claim_token=None,
                last_attempt_at=sa.bindparam("b_at"),
                last_status_code=sa.bindparam("b_code"),
                last_error=sa.bindparam("b_error"),
                delivered_at=sa.func.coalesce(
                    sa.bindparam("b_delivered", type_=d.c.delivered_at.type), d.c.delivered_at
                ),
            ),
            updates,
        )
        if healthy:
            await session.execute(
                endpoints.update()
                .where(endpoints.c.id.in_(healthy), endpoints.c.failing_since.is_not(None))
                .values(failing_since=None)
            )
        notices = 0
        if failing:
            await session.execute(
                endpoints.update()
                .where(endpoints.c.id.in_(failing), endpoints.c.failing_since.is_(None))
                .values(failing_since=first_failure)
            )
            cutoff = now - timedelta(seconds=disable_after_seconds)
            notices += await _disable(
                session,
                (endpoints.c.id.in_(failing)) & (endpoints.c.failing_since <= cutoff),
                DISABLED_FAILING,
                now,
            )
        if gone:
            notices += await _disable(session, endpoints.c.id.in_(gone), DISABLED_GONE, now)
        await session.commit()
    return notices


async def _disable(session: Any, which: sa.ColumnElement[bool], reason: str, now: datetime) -> int:
    """Disable endpoints at most once each (conditional update) and announce it."""
    disabled = (
        await session.execute(
            endpoints.update()
            .where(which, endpoints.c.disabled.is_(False))
            .values(disabled=True, disabled_reason=reason, disabled_at=now, updated_at=now)
            .returning(endpoints.c.id, endpoints.c.url, endpoints.c.failing_since)
        )
    ).all()
    if not disabled:
        return 0
    await park_deliveries(session, [row.id for row in disabled])
    for row in disabled:
        log.warning("webhook_endpoint_disabled", endpoint_id=str(row.id), reason=reason)
    return await disabled_notice(session, disabled, reason)


def describe_error(exc: Exception) -> str:
    """`<Kind>: <message>` of a transport error, for the delivery log."""
    if isinstance(exc, httpx.TimeoutException):
        return f"Timeout: {exc}"[:1000]
    return str(exc)[:1000] or type(exc).__name__
