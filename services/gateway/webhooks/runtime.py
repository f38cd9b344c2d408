"""What the gateway app holds for webhooks: the fan-out handler and the delivery worker."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, wake_after_commit
from services.common.events import Event
from services.common.observability import Metrics
from services.common.settings import Settings
from services.gateway.webhooks.catalogue import DOMAIN_EVENT_TYPES
from services.gateway.webhooks.client import build_partner_client
from services.gateway.webhooks.crypto import SecretBox
from services.gateway.webhooks.delivery import DeliveryWorker
from services.gateway.webhooks.service import WEBHOOKS_CHANNEL, MessageDraft, fan_out


class WebhookFanout:
    """The gateway's batch handler for every domain event (`events_router(batch_handler=)`):
    one message per catalogue event and one delivery per subscribed endpoint, set-based, in
    the inbox's transaction (so before the relay's call is acknowledged). Each event arrives
    parsed with its contract; partners get the contract's fields, as the catalogue shows."""

    def __init__(self, runtime: WebhookRuntime) -> None:
        self.runtime = runtime

    async def __call__(self, session: AsyncSession, events: list[Event[Any]]) -> None:
        drafts = [
            MessageDraft(e.id, e.type, e.occurred_at, e.data.model_dump(mode="json"))
            for e in events
            if e.type in DOMAIN_EVENT_TYPES
        ]
        if drafts and await fan_out(session, drafts):
            wake_after_commit(session, WEBHOOKS_CHANNEL)


class WebhookRuntime:
    """Created with the app; the worker and its HTTP client live between start and stop."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.box = SecretBox(settings)
        self.fanout = WebhookFanout(self)
        self._worker: DeliveryWorker | None = None
        self._stop_waking: Callable[[], None] | None = None

    @property
    def worker(self) -> DeliveryWorker:
        if self._worker is None:
            raise RuntimeError("the webhook runtime has not been started")
        return self._worker

    async def start(self, db: Database, *, run_worker: bool | None = None, metrics: Metrics | None = None) -> None:
        """Build the worker; its loop runs when relays do (tests drive it explicitly)."""
        client = build_partner_client(self.settings)
        self._worker = DeliveryWorker(db, self.settings, client, self.box, metrics=metrics)
        self._stop_waking = db.on_commit(WEBHOOKS_CHANNEL, self.wake)
        if self.settings.relay_enabled if run_worker is None else run_worker:
            self._worker.start()

    async def stop(self) -> None:
        if self._stop_waking is not None:
            self._stop_waking()
            self._stop_waking = None
        if self._worker is not None:
            await self._worker.stop()
            await self._worker.client.aclose()
            self._worker = None

    def wake(self) -> None:
        if self._worker is not None:
            self._worker.wake()
