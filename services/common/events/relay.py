"""Delivering events: the relay posts pending outbox rows to each subscriber in batches.

Each `outbox_pending` row is a job (see `services.common.jobs`): per subscriber, a pass
claims up to `relay_batch_size` due rows in a short transaction (`SKIP LOCKED`, marked
`in_flight` with a lease of `relay_lease_seconds` and a claim token, committed), then POSTs
them as one `{"events": [...]}` to the subscriber's `/internal/events` with no row lock
held, and records the outcome guarded by the claim token: delivered rows are deleted.
A relay that dies mid-pass leaves its rows in flight until the lease expires; any relay
then claims them again. Subscribers do not wait for each other.

A failed POST is one of two kinds, kept in `failure_kind`:

- **unavailable** (connection error, timeout, 5xx naming no event, 401/403/404/408/429):
  the subscriber is down or misconfigured, not the events. The posted rows get
  `attempts + 1`, `last_error` and a backed-off `next_attempt_at`; the subscriber is paused
  in this process for that delay. Nothing is ever parked for this: a subscriber that is
  down gets everything once it returns.
- **rejected**: the consumer named the event its handler failed on (`event_id`, see
  `inbox`), or a 4xx about the content (400/413/422) was narrowed down by halving the batch
  to the single event. The other events are re-sent at once; the rejected one is retried
  with backoff and, after `relay_max_attempts` consecutive rejections, gets the status
  `parked`: it stays in `outbox_pending` with its `last_error`, is never claimed again,
  and shows in `list_parked` and the `qunyun_relay_parked_events` gauge until `unpark`
  replays it.

**Batch rows** (an outbox with `batch_size`, see `outbox.Outbox.write_batch`) are one
pending row per subscriber for a whole batch of events. The relay posts each of its events
as its own envelope (its own id, type, occurred_at and data), exactly as if each had its
own row, so consumers cannot tell: their inbox applies each event once. A claim takes
rows until they add up to `relay_batch_size` events (at least one row) and gives the rest
back. The row is done when each of its events was delivered; an event the consumer
rejects is split out of it for that subscriber (its own outbox row, same id, and its own
pending row carrying the rejection), so it is retried and parked alone while the others
are delivered. A batch row posted while the subscriber was unavailable stays pending
whole: events of it already applied are duplicates to the consumer's inbox next time.

`attempts` counts consecutive failures of the current kind, so hours of outage never park
an event at its first rejection afterwards. Old outbox, inbox and Idempotency-Key rows are
purged by the service's housekeeping job (`services.common.jobs.housekeeping`).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, utcnow
from services.common.events.fanout import Item, is_batch, items_of, split_out
from services.common.events.outbox import OUTBOX_CHANNEL, Outbox
from services.common.events.tables import KitTables
from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, sign_internal_token
from services.common.jobs import PARKED, PENDING, Backoff, Claim, JobMetrics, JobQueue, PeriodicJob
from services.common.jobs.backoff import backoff_seconds
from services.common.observability import Metrics
from services.common.settings import Settings

log = structlog.get_logger("qunyun.relay")

MAX_POSTS_PER_PASS = 32  # bounds the work of isolating bad events in one pass
UNAVAILABLE, REJECTED = "unavailable", "rejected"  # failure kinds
_UNAVAILABLE_STATUSES = frozenset({401, 403, 404, 408, 425, 429})

__all__ = ["Relay", "backoff_seconds", "list_parked", "unpark"]


@dataclass(frozen=True)
class _PostResult:
    ok: bool
    error: str = ""
    unavailable: bool = False
    culprit: uuid.UUID | None = None  # the event the consumer says it failed on


@dataclass
class _Outcome:
    delivered: list[Item] = field(default_factory=list)
    rejected: dict[uuid.UUID, str] = field(default_factory=dict)  # by item (event) id
    unavailable: list[Item] = field(default_factory=list)  # posted while the subscriber failed
    unavailable_error: str | None = None
    posts: int = 0
    failed_posts: int = 0


@dataclass(frozen=True)
class PassResult:
    """What one delivery pass for one subscriber did."""

    delivered: int = 0
    rejected: int = 0
    parked: int = 0
    unavailable: bool = False

    @property
    def progressed(self) -> bool:
        return bool(self.delivered or self.rejected)


@dataclass(frozen=True)
class ParkedEvent:
    subscriber: str
    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    attempts: int
    last_error: str | None


class Relay:
    """Delivers one service's outbox to its subscribers."""

    JOB = "relay"

    def __init__(
        self,
        db: Database,
        outbox: Outbox,
        settings: Settings,
        client: httpx.AsyncClient,
        *,
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.client = client
        self.metrics = metrics
        self.queue = JobQueue(self.JOB, outbox.tables.outbox_pending)
        self.backoff = Backoff(base=settings.relay_retry_base_seconds, cap=settings.relay_retry_max_seconds)
        self.job_metrics = JobMetrics(metrics, self.JOB)
        self._paused_until: dict[str, float] = {}
        self.job = PeriodicJob(
            self.JOB,
            self._pass_all_progressed,
            interval_seconds=settings.relay_interval_ms / 1000,
            more_while_busy=True,
        )
        db.on_commit(OUTBOX_CHANNEL, self.job.wake)
        if metrics is not None:
            metrics.refreshers.append(self.refresh_metrics)

    @property
    def tables(self) -> KitTables:
        return self.outbox.tables

    # --- delivery -------------------------------------------------------------------

    async def deliver_once(self, subscriber: str) -> int:
        """One pass for one subscriber: returns how many events it delivered."""
        return (await self.deliver_pass(subscriber)).delivered

    async def deliver_pass(self, subscriber: str) -> PassResult:
        """Claim due rows for `subscriber`, post them (no lock held), record the outcome."""
        if self._paused_until.get(subscriber, 0.0) > time.monotonic():
            return PassResult()
        claim, rows = await self._claim(subscriber)
        if not rows:
            return PassResult()
        # Start no post that could outlive the lease: the rows would be claimed again meanwhile.
        deadline = time.monotonic() + self.settings.relay_lease_seconds - self.settings.relay_timeout_seconds
        items = [item for row in rows for item in items_of(row, self.outbox.source)]
        try:
            outcome = await self._send(subscriber, items, deadline)
        except BaseException:
            # Cancelled (shutdown) or broken: give the rows back now rather than at lease expiry.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._release(claim))
            raise
        async with self.db.session() as session:
            result = await self._record(session, subscriber, claim, rows, items, outcome)
            await session.commit()
        self._observe(subscriber, result, outcome)
        return result

    async def _claim(self, subscriber: str) -> tuple[Claim, list[Any]]:
        pending, outbox = self.tables.outbox_pending, self.tables.outbox
        async with self.db.session() as session:
            candidates = (
                sa.select(pending.c.subscriber, pending.c.event_id)
                .join(outbox, outbox.c.id == pending.c.event_id)
                .where(pending.c.subscriber == subscriber)
                .order_by(outbox.c.seq)
                .limit(self.settings.relay_batch_size)
            )
            claim = await self.queue.claim(
                session, candidates, now=utcnow(), lease_seconds=self.settings.relay_lease_seconds
            )
            await session.commit()
            if not claim:
                return claim, []
            if "batch_size" in outbox.c:
                await self._keep_within_batch_size(session, subscriber, claim)
            rows = (
                await session.execute(
                    sa.select(
                        pending.c.event_id,
                        pending.c.attempts,
                        pending.c.failure_kind,
                        outbox.c.id,
                        outbox.c.type,
                        outbox.c.occurred_at,
                        outbox.c.data,
                        *([outbox.c.batch_size] if "batch_size" in outbox.c else []),
                    )
                    .join(outbox, outbox.c.id == pending.c.event_id)
                    .where(pending.c.subscriber == subscriber, self.queue.held(claim.token))
                    .order_by(outbox.c.seq)
                )
            ).all()
            await session.commit()  # no transaction stays open across the posts
        return claim, list(rows)

    async def _keep_within_batch_size(self, session: AsyncSession, subscriber: str, claim: Claim) -> None:
        """Give back claimed rows beyond `relay_batch_size` events (batch rows count each
        event; the first row is always kept), so one post stays a bounded size."""
        pending, outbox = self.tables.outbox_pending, self.tables.outbox
        sizes = (
            await session.execute(
                sa.select(pending.c.event_id, outbox.c.batch_size)
                .join(outbox, outbox.c.id == pending.c.event_id)
                .where(pending.c.subscriber == subscriber, self.queue.held(claim.token))
                .order_by(outbox.c.seq)
            )
        ).all()
        events, excess = 0, []
        for event_id, size in sizes:
            if events and events + (size or 1) > self.settings.relay_batch_size:
                excess.append(event_id)
            else:
                events += size or 1
        if excess:
            await session.execute(
                self.queue.release(claim.token, (pending.c.subscriber == subscriber) & pending.c.event_id.in_(excess))
            )
        await session.commit()

    async def _release(self, claim: Claim) -> None:
        async with self.db.session() as session:
            await session.execute(self.queue.release(claim.token))
            await session.commit()

    async def _send(self, subscriber: str, items: Sequence[Item], deadline: float) -> _Outcome:
        """Post `items`, isolating events the consumer rejects, until all are accounted for."""
        outcome = _Outcome()
        queue: list[list[Item]] = [list(items)]
        posts = 0
        while queue:
            chunk = queue.pop(0)
            if posts >= MAX_POSTS_PER_PASS or time.monotonic() > deadline:
                continue  # released untouched: the next pass takes them
            posts += 1
            result = await self._post(subscriber, [item.envelope for item in chunk])
            outcome.posts += 1
            if result.ok:
                outcome.delivered.extend(chunk)
                continue
            outcome.failed_posts += 1
            if result.unavailable:
                outcome.unavailable.extend(chunk)
                outcome.unavailable_error = result.error
                queue.clear()  # no point posting the rest now
            elif result.culprit is not None and any(item.id == result.culprit for item in chunk):
                outcome.rejected[result.culprit] = result.error
                rest = [item for item in chunk if item.id != result.culprit]
                if rest:
                    queue.insert(0, rest)
            elif len(chunk) > 1:
                middle = len(chunk) // 2
                queue[0:0] = [chunk[:middle], chunk[middle:]]
            else:
                outcome.rejected[chunk[0].id] = result.error
        return outcome

    async def _record(
        self,
        session: AsyncSession,
        subscriber: str,
        claim: Claim,
        rows: Sequence[Any],
        items: Sequence[Item],
        outcome: _Outcome,
    ) -> PassResult:
        pending = self.tables.outbox_pending
        now = utcnow()
        mine = (pending.c.subscriber == subscriber) & self.queue.held(claim.token)
        settled: dict[str, Any] = {"lease_until": None, "claim_token": None}
        done = {item.id for item in outcome.delivered}
        by_row: dict[uuid.UUID, list[Item]] = {}
        for item in items:
            by_row.setdefault(item.row.event_id, []).append(item)
        # A row is finished when each of its events was delivered or (batch rows) split out.
        finished = [
            key
            for key, row_items in by_row.items()
            if all(i.id in done or (is_batch(i.row) and i.id in outcome.rejected) for i in row_items)
        ]
        if finished:
            await session.execute(pending.delete().where(mine, pending.c.event_id.in_(finished)))
        by_id = {row.event_id: row for row in rows}
        parked = 0
        for item in items:
            if is_batch(item.row) and item.id in outcome.rejected:
                parked += await self._split_out(session, subscriber, item, outcome.rejected[item.id], now)
        for event_id, error in outcome.rejected.items():
            row = by_id.get(event_id)
            if row is None or is_batch(row):
                continue  # split out of its batch above
            attempts = _consecutive(row, REJECTED) + 1
            park = attempts >= self.settings.relay_max_attempts
            parked += park
            await session.execute(
                pending.update()
                .where(mine, pending.c.event_id == event_id)
                .values(
                    status=PARKED if park else PENDING,
                    attempts=attempts,
                    failure_kind=REJECTED,
                    last_error=f"rejected: {error}"[:1000],
                    next_attempt_at=now if park else now + timedelta(seconds=self._backoff(attempts)),
                    **settled,
                )
            )
            log.warning(
                "relay_event_parked" if park else "relay_event_rejected",
                subscriber=subscriber,
                event_id=str(event_id),
                event_type=row.type,
                attempts=attempts,
                error=error[:200],
            )
        if outcome.unavailable:
            posted = {item.row.event_id: item.row for item in outcome.unavailable}
            attempts = max(_consecutive(row, UNAVAILABLE) for row in posted.values()) + 1
            delay = self._backoff(attempts)
            ids = list(posted)
            # Rows of an earlier kind restart their count; all share one retry time.
            await session.execute(
                pending.update()
                .where(mine, pending.c.event_id.in_(ids))
                .values(
                    status=PENDING,
                    attempts=sa.case((pending.c.failure_kind == UNAVAILABLE, pending.c.attempts + 1), else_=1),
                    failure_kind=UNAVAILABLE,
                    last_error=f"unavailable: {outcome.unavailable_error}"[:1000],
                    next_attempt_at=now + timedelta(seconds=delay),
                    **settled,
                )
            )
            self._paused_until[subscriber] = time.monotonic() + delay
            log.warning(
                "relay_subscriber_unavailable",
                subscriber=subscriber,
                events=len(ids),
                attempts=attempts,
                retry_in_s=round(delay, 2),
                error=(outcome.unavailable_error or "")[:200],
            )
        else:
            self._paused_until.pop(subscriber, None)
        # Whatever this pass did not post (bounded posts, the lease running out) is due as before.
        await session.execute(self.queue.release(claim.token, pending.c.subscriber == subscriber))
        return PassResult(
            delivered=len(outcome.delivered),
            rejected=len(outcome.rejected),
            parked=parked,
            unavailable=bool(outcome.unavailable),
        )

    async def _split_out(self, session: AsyncSession, subscriber: str, item: Item, error: str, now: datetime) -> int:
        """An event of a batch row that `subscriber` rejected gets its own rows (see
        `fanout.split_out`), carrying this first rejection. Returns 1 if it is parked at once."""
        park = self.settings.relay_max_attempts <= 1
        await split_out(
            session,
            self.tables,
            subscriber,
            item,
            status=PARKED if park else PENDING,
            last_error=f"rejected: {error}"[:1000],
            next_attempt_at=now if park else now + timedelta(seconds=self._backoff(1)),
        )
        log.warning(
            "relay_event_parked" if park else "relay_event_rejected",
            subscriber=subscriber,
            event_id=str(item.id),
            event_type=item.envelope["type"],
            attempts=1,
            error=error[:200],
            split_from=str(item.row.event_id),
        )
        return int(park)

    def _backoff(self, attempts: int) -> float:
        return self.backoff.delay(attempts) or 0.0

    def _observe(self, subscriber: str, result: PassResult, outcome: _Outcome) -> None:
        self.job_metrics.attempted(outcome.posts)
        self.job_metrics.failed(outcome.failed_posts)
        if self.metrics is None:
            return
        service = self.metrics.service
        if result.delivered:
            self.metrics.events_delivered.labels(service, subscriber).inc(result.delivered)
        if result.rejected:
            self.metrics.delivery_failures.labels(service, subscriber, REJECTED).inc(result.rejected)
        if result.unavailable:
            self.metrics.delivery_failures.labels(service, subscriber, UNAVAILABLE).inc()
        if result.parked:
            self.metrics.events_parked.labels(service, subscriber).inc(result.parked)

    async def _post(self, subscriber: str, events: list[dict[str, Any]]) -> _PostResult:
        url = f"{self.settings.url_for(subscriber)}/internal/events"  # type: ignore[arg-type]
        token = sign_internal_token(SYSTEM, self.settings)
        try:
            response = await self.client.post(
                url,
                json={"events": events},
                headers={INTERNAL_TOKEN_HEADER: token},
                timeout=self.settings.relay_timeout_seconds,
            )
        except httpx.HTTPError as exc:
            return _PostResult(ok=False, error=f"{type(exc).__name__}: {exc}", unavailable=True)
        if response.is_success:
            return _PostResult(ok=True)
        return _classify(response, events)

    async def deliver_all_once(self) -> int:
        """One pass for every subscriber; returns how many events were delivered."""
        return sum(result.delivered for result in await self._pass_all())

    async def _pass_all(self) -> list[PassResult]:
        results = []
        for subscriber in self.outbox.subscribers:
            try:
                results.append(await self.deliver_pass(subscriber))
            except Exception:  # a broken pass must not kill the loop
                log.exception("relay_pass_failed", subscriber=subscriber)
        return results

    async def _pass_all_progressed(self) -> bool:
        return any(result.progressed for result in await self._pass_all())

    async def drain(self, max_passes: int = 100) -> int:
        """Deliver until nothing is due (tests and shutdown); ignores pauses."""
        total = 0
        for _ in range(max_passes):
            self._paused_until.clear()
            results = await self._pass_all()
            total += sum(result.delivered for result in results)
            if not any(result.progressed for result in results):
                break
        return total

    def start(self) -> None:
        self.job.start()

    async def stop(self) -> None:
        await self.job.stop()

    # --- operations: parked events, metrics ------------------------------------------

    async def list_parked(self, subscriber: str | None = None, limit: int = 100) -> list[ParkedEvent]:
        async with self.db.session() as session:
            return await list_parked(session, self.tables, subscriber, limit=limit)

    async def unpark(self, subscriber: str, event_ids: Sequence[uuid.UUID] | None = None) -> int:
        """Make parked events due again (after the consumer was fixed); returns how many."""
        async with self.db.session() as session:
            count = await unpark(session, self.tables, subscriber, event_ids)
            await session.commit()
        self._paused_until.pop(subscriber, None)
        self.job.wake()
        return count

    async def refresh_metrics(self) -> None:
        """Pending, parked and lag gauges per subscriber, from one grouped query."""
        if self.metrics is None:
            return
        pending = self.tables.outbox_pending
        is_parked = pending.c.status == PARKED
        query = sa.select(
            pending.c.subscriber,
            sa.func.count().label("total"),
            sa.func.sum(sa.case((is_parked, 1), else_=0)).label("parked"),
            sa.func.min(sa.case((~is_parked, pending.c.next_attempt_at), else_=None)).label("oldest_due"),
        ).group_by(pending.c.subscriber)
        now = utcnow()
        async with self.db.session() as session:
            rows = {row.subscriber: row for row in (await session.execute(query)).all()}
            self.job_metrics.set_depth(await self.queue.depth(session, now))
        service = self.metrics.service
        for subscriber in sorted(set(self.outbox.subscribers) | set(rows)):
            row = rows.get(subscriber)
            parked = int(row.parked or 0) if row else 0
            total = int(row.total) if row else 0
            oldest = row.oldest_due if row else None
            lag = max(0.0, (now - oldest).total_seconds()) if oldest is not None else 0.0
            self.metrics.pending.labels(service, subscriber).set(total - parked)
            self.metrics.parked.labels(service, subscriber).set(parked)
            self.metrics.lag.labels(service, subscriber).set(lag)


def _consecutive(row: Any, kind: str) -> int:
    """The row's attempts, if its last failure was of this kind; else none yet."""
    return int(row.attempts) if row.failure_kind == kind else 0


def _classify(response: httpx.Response, events: list[dict[str, Any]]) -> _PostResult:
    status = response.status_code
    error = f"HTTP {status}: {response.text[:300]}"
    body: Any = None
    with contextlib.suppress(ValueError):
        body = response.json()
    culprit = _named_event(body, events) if isinstance(body, dict) else None
    if culprit is not None:
        return _PostResult(ok=False, error=error, culprit=culprit)
    if status in _UNAVAILABLE_STATUSES or status >= 500:
        return _PostResult(ok=False, error=error, unavailable=True)
    return _PostResult(ok=False, error=error)  # about the content: narrowed by halving


def _named_event(body: dict[str, Any], events: list[dict[str, Any]]) -> uuid.UUID | None:
    """The event a consumer's error names: `event_id`, or `errors[].loc` = body.events.<i>."""
    with contextlib.suppress(ValueError, TypeError, AttributeError):
        if body.get("event_id"):
            return uuid.UUID(str(body["event_id"]))
        for error in body.get("errors") or ():
            loc = error.get("loc") or []
            if len(loc) >= 3 and loc[0] == "body" and loc[1] == "events" and isinstance(loc[2], int):
                if 0 <= loc[2] < len(events):
                    return uuid.UUID(events[loc[2]]["id"])
    return None


async def list_parked(
    session: AsyncSession, tables: KitTables, subscriber: str | None = None, *, limit: int = 100
) -> list[ParkedEvent]:
    """Parked events, oldest first, with the error that parked them."""
    pending, outbox = tables.outbox_pending, tables.outbox
    query = (
        sa.select(
            pending.c.subscriber,
            pending.c.event_id,
            outbox.c.type,
            outbox.c.occurred_at,
            pending.c.attempts,
            pending.c.last_error,
        )
        .join(outbox, outbox.c.id == pending.c.event_id)
        .where(pending.c.status == PARKED)
        .order_by(outbox.c.seq)
        .limit(limit)
    )
    if subscriber is not None:
        query = query.where(pending.c.subscriber == subscriber)
    return [ParkedEvent(**row._mapping) for row in (await session.execute(query)).all()]


async def unpark(
    session: AsyncSession, tables: KitTables, subscriber: str, event_ids: Sequence[uuid.UUID] | None = None
) -> int:
    """Make parked events of `subscriber` due now, with a fresh attempt count."""
    pending = tables.outbox_pending
    statement = (
        pending.update()
        .where(pending.c.subscriber == subscriber, pending.c.status == PARKED)
        .values(status=PENDING, attempts=0, failure_kind=None, next_attempt_at=utcnow())
    )
    if event_ids is not None:
        statement = statement.where(pending.c.event_id.in_(list(event_ids)))
    result = await session.execute(statement)
    return int(getattr(result, "rowcount", 0) or 0)
