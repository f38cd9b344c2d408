"""Helpers for the webhook tests: a real HTTP receiver on loopback, an admin client,
and a way to publish events to the gateway as the relays do."""

from __future__ import annotations

import asyncio
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

import httpx
from aiohttp import web
from standardwebhooks import Webhook

from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, sign_internal_token
from services.gateway.webhooks.delivery import DeliveryWorker
from tests.system import System, staff

ADMIN = staff("admin")
OPERATOR = staff("operator")
_IDENTITIES = {"admin": ADMIN, "operator": OPERATOR}


async def admin_client(system: System, who: str | None = "admin") -> httpx.AsyncClient:
    """A gateway client authenticated as an admin (or `who`: operator, None = anonymous),
    with real credentials (a staff account and its access token)."""
    if who is None:
        return system.anonymous()
    return await system.client(_IDENTITIES[who])


def event(
    event_type: str, data: dict[str, Any], *, event_id: uuid.UUID | None = None, source: str = "members"
) -> dict[str, Any]:
    return {
        "id": str(event_id or uuid.uuid4()),
        "type": event_type,
        "source": source,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": data,
    }


async def publish(system: System, *events: dict[str, Any]) -> dict[str, int]:
    """POST events to the gateway's /internal/events exactly as a service's relay does."""
    token = sign_internal_token(SYSTEM, system.settings)
    async with system.direct("gateway") as client:
        response = await client.post(
            "/internal/events", json={"events": list(events)}, headers={INTERNAL_TOKEN_HEADER: token}
        )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]


def worker(system: System) -> DeliveryWorker:
    return system.state("gateway").webhooks.worker  # type: ignore[no-any-return]


@dataclass
class Received:
    headers: dict[str, str]
    body: bytes
    at: float

    @property
    def webhook_id(self) -> str:
        return self.headers["webhook-id"]

    def verify(self, secret: str) -> dict[str, Any]:
        return Webhook(secret).verify(self.body, self.headers)  # type: ignore[no-any-return]


# A behaviour maps the n-th request (0-based) to (status, headers, delay in seconds).
Behaviour = Callable[[int, "Received"], tuple[int, dict[str, str], float]]


def always(status: int, headers: dict[str, str] | None = None) -> Behaviour:
    return lambda _n, _r: (status, headers or {}, 0.0)


def fail_first(count: int, status: int = 500) -> Behaviour:
    return lambda n, _r: (status if n < count else 200, {}, 0.0)


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request it answers."""

    behaviour: Behaviour = field(default_factory=lambda: always(200))
    port: int = 0
    received: list[Received] = field(default_factory=list)
    _runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hooks"

    async def start(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/hooks", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        if not self.port:
            self.port = free_port()
        site = web.TCPSite(self._runner, "127.0.0.1", self.port)
        await site.start()
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def __aenter__(self) -> Receiver:
        return await self.start()

    async def __aexit__(self, *_: object) -> None:
        await self.stop()

    async def _handle(self, request: web.Request) -> web.Response:
        got = Received(dict(request.headers), await request.read(), time.time())
        index = len(self.received)
        self.received.append(got)
        status, headers, delay = self.behaviour(index, got)
        if delay:
            await asyncio.sleep(delay)
        return web.Response(status=status, headers=headers, text="ok" if status < 300 else "nope")

    def by_type(self, event_type: str) -> list[Received]:
        return [r for r in self.received if r.body and _type_of(r) == event_type]

    async def wait_for(self, count: int, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.received) < count:
            if time.monotonic() > deadline:
                raise AssertionError(f"expected {count} requests, got {len(self.received)}")
            await asyncio.sleep(0.02)


def _type_of(received: Received) -> str:
    import json

    return str(json.loads(received.body)["type"])


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def create_endpoint(client: httpx.AsyncClient, url: str, event_types: list[str], **extra: Any) -> tuple[str, str]:
    """Register an endpoint through the API; returns (id, secret)."""
    response = await client.post("/v1/webhook-endpoints", json={"url": url, "event_types": event_types, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["secret"]
