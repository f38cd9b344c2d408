"""Delivering events: the relay posts pending outbox rows to each subscriber in batches.

Per subscriber, a pass claims up to `relay_batch_size` due rows (`FOR UPDATE SKIP LOCKED`
on Postgres, so replicas never send the same batch at once), POSTs them as one
`{"events": [...]}` to the subscriber's `/internal/events`, and deletes the rows on a
2xx. On failure the rows stay, with attempts, error and a backed-off `next_attempt_at`,
and the subscriber is paused in this process for the same delay. Other subscribers are
not affected. A commit that wrote events wakes the relay at once; otherwise it polls
every `relay_interval_ms`.
"""

from __future__ import annotations

import asyncio
import contextlib
import random
import time
from datetime import timedelta
from typing import Any

import httpx
import sqlalchemy as sa
import structlog

from services.common.db import Database, utcnow
from services.common.events.outbox import Outbox
from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, sign_internal_token
from services.common.settings import Settings

log = structlog.get_logger("qunyun.relay")

RETRY_BASE_SECONDS = 1.0
RETRY_MAX_SECONDS = 300.0


def backoff_seconds(attempts: int) -> float:
    """Exponential backoff with full jitter, capped at five minutes."""
    ceiling = min(RETRY_MAX_SECONDS, RETRY_BASE_SECONDS * 2 ** min(attempts, 16))
    return random.uniform(ceiling / 2, ceiling)


def event_envelope(row: Any, source: str) -> dict[str, Any]:
    return {
        "id": str(row.id),
        "type": row.type,
        "source": source,
        "occurred_at": row.occurred_at.isoformat().replace("+00:00", "Z"),
        "data": row.data,
    }


class Relay:
    """Delivers one service's outbox to its subscribers."""

    def __init__(self, db: Database, outbox: Outbox, settings: Settings, client: httpx.AsyncClient) -> None:
        self.db = db
        self.outbox = outbox
        self.settings = settings
        self.client = client
        self._wake = asyncio.Event()
        self._paused_until: dict[str, float] = {}
        self._task: asyncio.Task[None] | None = None
        db.on_outbox_commit = self._wake.set

    async def deliver_once(self, subscriber: str) -> int:
        """One pass for one subscriber: returns how many events it delivered."""
        if self._paused_until.get(subscriber, 0.0) > time.monotonic():
            return 0
        pending, outbox = self.outbox.tables.outbox_pending, self.outbox.tables.outbox
        now = utcnow()
        async with self.db.session() as session:
            claim = (
                sa.select(
                    pending.c.event_id,
                    pending.c.attempts,
                    outbox.c.id,
                    outbox.c.type,
                    outbox.c.occurred_at,
                    outbox.c.data,
                )
                .join(outbox, outbox.c.id == pending.c.event_id)
                .where(pending.c.subscriber == subscriber, pending.c.next_attempt_at <= now)
                .order_by(outbox.c.seq)
                .limit(self.settings.relay_batch_size)
                .with_for_update(of=pending, skip_locked=True)
            )
            rows = (await session.execute(claim)).all()
            if not rows:
                return 0
            ids = [row.event_id for row in rows]
            error = await self._post(subscriber, [event_envelope(row, self.outbox.source) for row in rows])
            owned = (pending.c.subscriber == subscriber) & pending.c.event_id.in_(ids)
            if error is None:
                await session.execute(pending.delete().where(owned))
                await session.commit()
                self._paused_until.pop(subscriber, None)
                return len(rows)
            attempts = max(row.attempts for row in rows) + 1
            delay = backoff_seconds(attempts)
            await session.execute(
                pending.update()
                .where(owned)
                .values(
                    attempts=pending.c.attempts + 1,
                    last_error=error[:1000],
                    next_attempt_at=now + timedelta(seconds=delay),
                )
            )
            await session.commit()
            self._paused_until[subscriber] = time.monotonic() + delay
            log.warning(
                "relay_delivery_failed",
                subscriber=subscriber,
                events=len(rows),
                attempts=attempts,
                retry_in_s=round(delay, 1),
                error=error[:200],
            )
            return 0

    async def _post(self, subscriber: str, events: list[dict[str, Any]]) -> str | None:
        url = f"{self.settings.url_for(subscriber)}/internal/events"  # type: ignore[arg-type]
        token = sign_internal_token(SYSTEM, self.settings)
        try:
            response = await self.client.post(
                url, json={"events": events}, headers={INTERNAL_TOKEN_HEADER: token}, timeout=30.0
            )
        except httpx.HTTPError as exc:
            return f"{type(exc).__name__}: {exc}"
        if response.is_success:
            return None
        return f"HTTP {response.status_code}: {response.text[:300]}"

    async def deliver_all_once(self) -> int:
        delivered = 0
        for subscriber in self.outbox.subscribers:
            try:
                delivered += await self.deliver_once(subscriber)
            except Exception:  # a broken pass must not kill the loop
                log.exception("relay_pass_failed", subscriber=subscriber)
        return delivered

    async def drain(self, max_passes: int = 100) -> int:
        """Deliver until nothing is due (tests and shutdown); ignores pauses."""
        total = 0
        for _ in range(max_passes):
            self._paused_until.clear()
            delivered = await self.deliver_all_once()
            total += delivered
            if delivered == 0:
                break
        return total

    async def run(self) -> None:
        interval = self.settings.relay_interval_ms / 1000
        while True:
            delivered = await self.deliver_all_once()
            if delivered:
                continue  # more may be waiting: keep going while there is work
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), timeout=interval)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self.run(), name=f"relay-{self.outbox.source}")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
