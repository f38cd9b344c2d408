"""The delivery worker: claims due deliveries, signs and sends them, records the outcome.

Every gateway replica runs one. Deliveries are a job queue (`services.common.jobs`): a
claim is a short transaction that picks due rows, the oldest few per endpoint, with
`FOR UPDATE SKIP LOCKED` and flips them to `sending` with a lease (`lease_until`) and a
claim token: no two workers ever hold the same attempt. The HTTP call happens outside any
transaction; outcomes are recorded in batches, each guarded by the claim token. A worker
that dies mid-way leaves `sending` rows whose lease expires; they are then claimed again
(at least once, never lost). Sending is concurrent across endpoints and bounded per
endpoint in each process. Retries follow `QUNYUN_WEBHOOK_RETRY_SCHEDULE` with jitter.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

import httpx
import sqlalchemy as sa
import structlog
from standardwebhooks import Webhook

from services.common.db import Database, utcnow
from services.common.jobs import JobMetrics, JobQueue, QueueDepth
from services.common.observability import Metrics
from services.common.settings import Settings
from services.gateway.webhooks.crypto import SecretBox
from services.gateway.webhooks.models import PENDING, SENDING, deliveries, endpoints, messages
from services.gateway.webhooks.outcomes import Job, Outcome, describe_error, record_outcomes, retry_after_seconds
from services.gateway.webhooks.service import webhook_id

log = structlog.get_logger("qunyun.webhooks")

CLAIM_COALESCE_SECONDS = 0.005


# Deliveries as a job queue: the claim moves them from `pending` to `sending`.
QUEUE = JobQueue("webhooks", deliveries, pending=PENDING, in_flight=SENDING)


class DeliveryWorker:
    """Delivers pending webhook messages; one per process, any number per deployment."""

    def __init__(
        self,
        db: Database,
        settings: Settings,
        client: httpx.AsyncClient,
        box: SecretBox,
        *,
        name: str = "webhooks",
        metrics: Metrics | None = None,
    ) -> None:
        self.db = db
        self.metrics = JobMetrics(metrics, QUEUE.name)
        self.metrics.watch(self.depth)
        self.settings = settings
        self.client = client
        self.box = box
        self.name = name
        self.delays = settings.webhook_retry_delays
        self.per_endpoint = settings.webhook_max_in_flight_per_endpoint
        self.max_in_flight = settings.webhook_max_in_flight
        self.poll_seconds = settings.relay_interval_ms / 1000  # idle polling; new work wakes it at once
        self._in_flight: dict[uuid.UUID, int] = defaultdict(int)
        self._signers: dict[str, Webhook] = {}
        self._wake = asyncio.Event()
        self._outcomes: list[Outcome] = []
        self._outcomes_ready = asyncio.Event()
        self._sends: set[asyncio.Task[None]] = set()
        self._task: asyncio.Task[None] | None = None
        self._recorder: asyncio.Task[None] | None = None
        self._stopping = False

    def wake(self) -> None:
        """New work may be due (new deliveries, a retry, a replay, a freed slot)."""
        self._wake.set()

    # Claim --------------------------------------------------------------------------

    async def claim(self, limit: int) -> list[Job]:
        """Lease up to `limit` due deliveries, at most the free slots of each endpoint."""
        limit = min(limit, self.settings.webhook_claim_batch_size)
        if limit <= 0:
            return []
        now = utcnow()
        saturated = [eid for eid, n in self._in_flight.items() if n >= self.per_endpoint]
        due = QUEUE.due(now)
        job_columns = (
            endpoints.c.url,
            endpoints.c.secret_ciphertext,
            endpoints.c.previous_secret_ciphertext,
            endpoints.c.previous_secret_expires_at,
            messages.c.payload,
        )
        # Per endpoint, at most its slot count of the oldest due rows (an index range
        # scan each), locked with SKIP LOCKED so replicas take disjoint rows.
        per_endpoint = (
            sa.select(
                deliveries.c.id,
                deliveries.c.endpoint_id,
                deliveries.c.message_id,
                deliveries.c.trigger,
                deliveries.c.round_attempts,
                deliveries.c.next_attempt_at,
            )
            .where(deliveries.c.endpoint_id == endpoints.c.id, due)
            .order_by(deliveries.c.next_attempt_at)
            .limit(self.per_endpoint)
            .with_for_update(skip_locked=True)
            .lateral("due")
        )
        stmt = (
            sa.select(
                per_endpoint.c.id,
                per_endpoint.c.endpoint_id,
                per_endpoint.c.message_id,
                per_endpoint.c.trigger,
                per_endpoint.c.round_attempts,
                *job_columns,
            )
            .select_from(endpoints)
            .join(per_endpoint, sa.true())
            .join(messages, messages.c.id == per_endpoint.c.message_id)
            .where(endpoints.c.disabled.is_(False))
            .order_by(per_endpoint.c.next_attempt_at)
            .limit(limit)
        )
        if saturated:
            stmt = stmt.where(endpoints.c.id.not_in(saturated))
        async with self.db.session() as session:
            rows = (await session.execute(stmt)).all()
            free = {eid: self.per_endpoint - n for eid, n in self._in_flight.items()}
            chosen = []
            for row in rows:
                slots = free.get(row.endpoint_id, self.per_endpoint)
                if slots > 0:
                    free[row.endpoint_id] = slots - 1
                    chosen.append(row)
            if not chosen:
                return []
            # The rows are locked (SKIP LOCKED above), so all are taken; the lease repeats the
            # due condition as a guard, and only the ids it returns become jobs.
            claim = await QUEUE.lease(
                session,
                deliveries.c.id.in_([row.id for row in chosen]),
                now=now,
                lease_seconds=self.settings.webhook_lease_seconds,
            )
            await session.commit()
        claimed = {key.id for key in claim.keys}
        return [self._job(row, claim.token, now) for row in chosen if row.id in claimed]

    async def depth(self) -> QueueDepth:
        """Deliveries waiting or being sent (not those of disabled endpoints), for the metrics."""
        async with self.db.session() as session:
            waiting = deliveries.c.next_attempt_at.is_not(None) | (deliveries.c.status == SENDING)
            return await QUEUE.depth(session, utcnow(), where=[waiting])

    def _job(self, row: Any, token: uuid.UUID, now: datetime) -> Job:
        secrets = [self.box.decrypt(row.secret_ciphertext, row.endpoint_id)]
        if row.previous_secret_ciphertext and row.previous_secret_expires_at and row.previous_secret_expires_at > now:
            secrets.append(self.box.decrypt(row.previous_secret_ciphertext, row.endpoint_id))
        return Job(
            delivery_id=row.id,
            claim_token=token,
            endpoint_id=row.endpoint_id,
            url=row.url,
            message_id=row.message_id,
            payload=row.payload,
            trigger=row.trigger,
            round_attempts=row.round_attempts,
            secrets=tuple(secrets),
        )

    # Send ---------------------------------------------------------------------------

    def sign(self, job: Job, timestamp: int) -> str:
        """`v1,<sig>` per secret, space-separated (two during a rotation's grace period)."""
        moment = datetime.fromtimestamp(timestamp, UTC)
        signatures = []
        for secret in job.secrets:
            signer = self._signers.get(secret)
            if signer is None:
                if len(self._signers) > 10_000:
                    self._signers.clear()
                signer = self._signers[secret] = Webhook(secret)
            signatures.append(signer.sign(webhook_id(job.message_id), moment, job.payload))
        return " ".join(signatures)

    async def send(self, job: Job) -> Outcome:
        """One attempt: POST the signed message; never raises."""
        timestamp = int(time.time())
        headers = {
            "content-type": "application/json",
            "webhook-id": webhook_id(job.message_id),
            "webhook-timestamp": str(timestamp),
            "webhook-signature": self.sign(job, timestamp),
        }
        attempted_at = utcnow()
        started = time.perf_counter()
        timeout = self.settings.webhook_timeout_seconds

        def done(**fields: Any) -> Outcome:
            latency = int((time.perf_counter() - started) * 1000)
            return Outcome(job=job, attempted_at=attempted_at, latency_ms=latency, **fields)

        try:
            async with asyncio.timeout(timeout):
                resp = await self.client.post(job.url, content=job.payload.encode(), headers=headers)
        except TimeoutError:
            return done(error=f"Timeout: no answer within {timeout:g} s")
        except httpx.HTTPError as exc:
            return done(error=describe_error(exc))
        retry_after = None
        if resp.status_code in (429, 503):
            retry_after = retry_after_seconds(resp.headers.get("retry-after"))
        return done(
            status_code=resp.status_code,
            error=None if resp.is_success else f"HTTP {resp.status_code}",
            response_body=resp.content.decode("utf-8", errors="replace") or None,
            retry_after=retry_after,
        )

    # Record -------------------------------------------------------------------------

    async def record(self, outcomes: Sequence[Outcome]) -> None:
        """Store a batch of outcomes (`record_outcomes`); a disabled endpoint's notice is new work."""
        self.metrics.attempted(len(outcomes))
        self.metrics.failed(sum(not outcome.succeeded for outcome in outcomes))
        disable_after = self.settings.webhook_disable_after_seconds
        if await record_outcomes(self.db, outcomes, delays=self.delays, disable_after_seconds=disable_after):
            self.wake()

    # Loops --------------------------------------------------------------------------

    async def drain(self, max_rounds: int = 1000) -> int:
        """Send everything that is due now, round after round (tests, shutdown); returns attempts."""
        total = 0
        for _ in range(max_rounds):
            jobs = await self.claim(self.max_in_flight)
            if not jobs:
                break
            for job in jobs:
                self._in_flight[job.endpoint_id] += 1
            try:
                outcomes = await asyncio.gather(*(self.send(job) for job in jobs))
            finally:
                for job in jobs:
                    self._release(job)
            await self.record(outcomes)
            total += len(outcomes)
        return total

    def _release(self, job: Job) -> None:
        self._in_flight[job.endpoint_id] -= 1
        if self._in_flight[job.endpoint_id] <= 0:
            del self._in_flight[job.endpoint_id]

    async def run(self) -> None:
        while not self._stopping:
            # Cleared before claiming, so a wake during the claim is not lost.
            self._wake.clear()
            free = self.max_in_flight - sum(self._in_flight.values())
            jobs: list[Job] = []
            try:
                jobs = await self.claim(free)
            except Exception:  # a database hiccup must not kill the loop
                log.exception("webhook_claim_failed")
                await asyncio.sleep(self.poll_seconds)
            for job in jobs:
                self._in_flight[job.endpoint_id] += 1
                task = asyncio.create_task(self._send_one(job))
                self._sends.add(task)
                task.add_done_callback(self._sends.discard)
            if jobs and len(jobs) >= min(free, self.settings.webhook_claim_batch_size):
                continue  # a full claim: more may be due right now
            # Otherwise wait for new work, a freed slot, or the poll interval.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=self.poll_seconds)
            if self._sends:
                # Busy: let a few more sends finish so one claim refills several slots.
                await asyncio.sleep(CLAIM_COALESCE_SECONDS)

    async def _send_one(self, job: Job) -> None:
        try:
            outcome = await self.send(job)
        finally:
            self._release(job)
            self._wake.set()  # a slot is free
        self._outcomes.append(outcome)
        self._outcomes_ready.set()

    async def _record_loop(self) -> None:
        while True:
            await self._outcomes_ready.wait()
            self._outcomes_ready.clear()
            batch, self._outcomes = self._outcomes, []
            if batch:
                await self._record_with_retry(batch)
            if self._stopping and not self._outcomes:
                return

    async def _record_with_retry(self, batch: list[Outcome]) -> None:
        for attempt in range(5):
            try:
                await self.record(batch)
                self._wake.set()  # retries with no delay may be due at once
                return
            except Exception:
                log.exception("webhook_record_failed", outcomes=len(batch), attempt=attempt + 1)
                await asyncio.sleep(0.5 * 2**attempt)
        # Left `sending`: the leases expire and the attempts are made again.
        log.error("webhook_outcomes_dropped", outcomes=len(batch))

    def start(self) -> None:
        if self._task is None:
            self._stopping = False
            self._recorder = asyncio.create_task(self._record_loop(), name=f"{self.name}-recorder")
            self._task = asyncio.create_task(self.run(), name=f"{self.name}-worker")

    async def stop(self, grace_seconds: float = 5.0) -> None:
        """Stop claiming, let sends in flight finish (briefly), record every outcome."""
        if self._task is None or self._recorder is None:
            return
        # Let the loop finish its current claim and leave at the top (no transaction cut
        # in half); cancel it only if it does not.
        self._stopping = True
        self._wake.set()
        try:
            await asyncio.wait_for(self._task, timeout=grace_seconds)
        except TimeoutError:
            log.error("webhook_worker_stopped_late")
        if self._sends:
            await asyncio.wait(set(self._sends), timeout=grace_seconds)
            for task in set(self._sends):
                task.cancel()  # left `sending`: their leases expire and they are sent again
        self._outcomes_ready.set()
        try:
            await asyncio.wait_for(self._recorder, timeout=grace_seconds)
        except TimeoutError:
            log.error("webhook_recorder_stopped_late", outcomes=len(self._outcomes))
        self._task = self._recorder = None
