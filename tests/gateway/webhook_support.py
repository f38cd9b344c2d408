"""Helpers for the webhook tests: a real HTTP receiver on loopback (which checks every body
it receives against the event's contract), an admin client, and a way to publish events to
the gateway as the relays do (built from contract models, so they are what producers send)."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

import httpx
from aiohttp import web
from pydantic import ValidationError
from standardwebhooks import Webhook

from services.common.contracts import EVENT_TYPES, EventModel
from services.common.contracts.activity import ActivityRecorded
from services.common.contracts.members import MemberCreated
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


M = TypeVar("M", bound=EventModel)


def sample(contract: type[M], **fields: Any) -> M:
    """The contract's documented example with some fields changed."""
    return contract.model_validate(contract.example() | fields)


def event(data: EventModel, *, event_id: uuid.UUID | None = None, source: str = "members") -> dict[str, Any]:
    """The envelope a relay posts for this event (a fresh id unless given)."""
    return {
        "id": str(event_id or uuid.uuid4()),
        "type": data.event_type,
        "source": source,
        "occurred_at": datetime.now(UTC).isoformat(),
        "data": data.model_dump(mode="json"),
    }


def numbered_activity(n: int = 0) -> ActivityRecorded:
    """An `activity.recorded` numbered `n` (see `number_of`)."""
    return sample(ActivityRecorded, activity_id=str(uuid.uuid4()), properties={"n": n})


def activity_event(n: int = 0) -> dict[str, Any]:
    """An `activity.recorded` envelope numbered `n` (see `number_of`)."""
    return event(numbered_activity(n))


def member_event(n: int = 0) -> dict[str, Any]:
    """A `member.created` envelope numbered `n` (see `number_of`)."""
    return event(sample(MemberCreated, member_id=str(uuid.uuid4()), external_id=f"wx-{n}"))


def number_of(body: dict[str, Any]) -> int:
    """The `n` of a webhook body made from `activity_event(n)` or `member_event(n)`."""
    data = body["data"]
    if body["type"] == ActivityRecorded.event_type:
        return int(data["properties"]["n"])
    return int(data["external_id"].removeprefix("wx-"))


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


def contract_violation(body: bytes) -> str | None:
    """Why a webhook body is not `{type, timestamp, data}` with `data` exactly its contract."""
    import json

    try:
        message = json.loads(body)
        contract = EVENT_TYPES[message["type"]]
        datetime.fromisoformat(message["timestamp"])
        contract.model_validate(message["data"])  # strictly: what partners get is the contract
    except (ValueError, KeyError, TypeError, ValidationError) as exc:
        return f"{body[:200]!r}: {exc}"
    if set(message) != {"type", "timestamp", "data"}:
        return f"{body[:200]!r}: the envelope is not {{type, timestamp, data}}"
    return None


@dataclass
class Receiver:
    """A real HTTP server on 127.0.0.1 that records every request it answers, and fails the
    test (on leaving its `async with`) if any body broke its event's contract."""

    behaviour: Behaviour = field(default_factory=lambda: always(200))
    port: int = 0
    received: list[Received] = field(default_factory=list)
    violations: list[str] = field(default_factory=list)
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

    async def __aexit__(self, exc_type: object, *_: object) -> None:
        await self.stop()
        if exc_type is None:  # never hide the test's own failure
            assert not self.violations, "webhook bodies broke their contracts:\n" + "\n".join(self.violations)

    async def _handle(self, request: web.Request) -> web.Response:
        got = Received(dict(request.headers), await request.read(), time.time())
        # Webhooks carry a webhook-id; a test's raw request to the receiver is not checked.
        if "webhook-id" in got.headers and (violation := contract_violation(got.body)) is not None:
            self.violations.append(violation)
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
    """A free port in this worker's slice, below the ephemeral range (see `runner.port_slice`)."""
    from tests.e2e.runner import free_port_base

    return free_port_base(1)


async def create_endpoint(client: httpx.AsyncClient, url: str, event_types: list[str], **extra: Any) -> tuple[str, str]:
    """Register an endpoint through the API; returns (id, secret)."""
    response = await client.post("/v1/webhook-endpoints", json={"url": url, "event_types": event_types, **extra})
    assert response.status_code == 201, response.text
    body = response.json()
    return body["id"], body["secret"]
