"""A small service built with the kit, for testing the kit itself.

`KitSystem` runs three apps made by `create_service_app` on their own databases (all
migrated with the feedback service's migrations, which hold the kit tables):

- `feedback` is the producer: the test router below (things, idempotency, pagination,
  errors) and the relay under test;
- `members` and `content` are consumers: their `/internal/events` apply `thing.created`
  by emitting `thing.seen` in the same transaction (the effect tests count), and they can
  be told to fail on some events or to be down altogether.

The `thing.*` events are contracts defined here, for these tests only (the kit lets any
module register contracts), and the kit system routes them with its own subscription
table (`KIT_SUBSCRIPTIONS`, or one a test gives), not the services' one.

`CountingTransport` routes `http://<service>` to those apps and counts every event id
each consumer was posted, so "delivered exactly once" is checked at the wire.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import uuid
from collections import Counter
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Annotated, Any

import httpx
import sqlalchemy as sa
from fastapi import APIRouter, FastAPI, Form, Request
from pydantic import BaseModel, Field
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncSession
from starlette.responses import Response

from services.common.app import create_service_app
from services.common.contracts import EventModel, Subscriptions, UtcDatetime
from services.common.contracts.base import with_example
from services.common.db import Database, SessionDep, utcnow
from services.common.events import Event, EventDraft, emit, emit_many
from services.common.idempotency import IdempotencyKey, run_idempotent
from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, Caller, Identity, sign_internal_token
from services.common.jobs import PENDING
from services.common.pagination import Page, PageDep, keyset_after, paginate_rows
from services.common.problems import Conflict, problem_responses
from services.common.settings import ServiceName, Settings
from services.feedback.db import kit_tables
from services.feedback.models_registry import metadata
from tests.pg import clone_template, database_name, drop_databases, worker_id
from tests.system import test_settings

ROLES: tuple[ServiceName, ...] = ("feedback", "members", "content")  # producer first
CONSUMERS: tuple[ServiceName, ...] = ("members", "content")


# --- the test contracts ---------------------------------------------------------------------


class ThingCreated(EventModel):
    """A thing was created (the kit tests' event)."""

    event_type = "thing.created"
    model_config = with_example(name="lamp", count=0)

    name: str
    count: int = Field(default=0, ge=0)
    id: uuid.UUID | None = None
    at: UtcDatetime | None = None


class ThingArchived(EventModel):
    """A thing was archived (only members takes it)."""

    event_type = "thing.archived"
    model_config = with_example(name="lamp")

    name: str


class ThingSeen(EventModel):
    """A consumer applied a `thing.created` (the effect the tests count)."""

    event_type = "thing.seen"
    model_config = with_example(event_id="12345678-1234-5678-1234-567812345678", by="members")

    event_id: uuid.UUID
    by: str


class NobodyListens(EventModel):
    """An event no kit consumer subscribes to."""

    event_type = "nobody.listens"
    model_config = with_example(n=1)

    n: int


# members takes thing.created and thing.archived, content only thing.created.
KIT_SUBSCRIPTIONS: Subscriptions = {
    "members": frozenset({ThingCreated, ThingArchived}),
    "content": frozenset({ThingCreated}),
}


# --- the test router (it exercises the kit's primitives as a domain router would) ----------


class ThingCreate(BaseModel):
    name: str = Field(min_length=1, max_length=50)
    count: int = Field(default=0, ge=0)


class ThingRead(BaseModel):
    id: uuid.UUID
    name: str
    count: int
    created_at: datetime


ThingPage = Page[ThingRead]


async def create_thing_in(session: AsyncSession, request: Request, body: ThingCreate) -> ThingRead:
    """The effect: one `thing.created` event. Test hooks: gates, failures."""
    state = request.app.state
    gate: asyncio.Event | None = state.gates.get(body.name)
    if gate is not None:
        state.entered.set()
        await gate.wait()
    if body.name == "explode":
        raise RuntimeError("handler exploded")
    if body.name == "bad-sql":
        await session.execute(sa.text("SELECT * FROM no_such_table"))  # a database error that is ours
    # The name passes through the database as text, as a domain's column would take it.
    await session.execute(sa.select(sa.literal(body.name, sa.String)))
    if body.name == "conflict":
        raise Conflict("Things called 'conflict' always conflict.", slug="thing-conflict")
    thing_id = uuid.uuid4()
    occurred = utcnow()
    await emit(session, ThingCreated(id=thing_id, name=body.name, count=body.count), occurred_at=occurred)
    return ThingRead(id=thing_id, name=body.name, count=body.count, created_at=occurred)


def thing_router() -> APIRouter:
    router = APIRouter(prefix="/things", tags=["things"])

    @router.post("", status_code=201, response_model=ThingRead, responses=problem_responses(400, 409, 415, 422))
    async def create_thing(
        body: ThingCreate, session: SessionDep, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Create a thing (accepts Idempotency-Key)."""
        return await run_idempotent(
            db=request.app.state.db,
            tables=kit_tables,
            session=session,
            caller=caller,
            key=idempotency_key,
            payload=body,
            status_code=201,
            action=lambda: create_thing_in(session, request, body),
            operation="POST /things",
        )

    @router.post("/fail-after", status_code=201, responses=problem_responses(409, 422))
    async def create_thing_then_refuse(
        body: ThingCreate, session: SessionDep, caller: Caller, request: Request, idempotency_key: IdempotencyKey = None
    ) -> Response:
        """Runs idempotently, then fails later in the route: the key must be released."""
        await run_idempotent(
            db=request.app.state.db,
            tables=kit_tables,
            session=session,
            caller=caller,
            key=idempotency_key,
            payload=body,
            status_code=201,
            action=lambda: create_thing_in(session, request, body),
        )
        raise Conflict("Refused after the fact.")

    @router.post("/form", status_code=201, responses=problem_responses(422))
    async def create_thing_from_form(name: Annotated[str, Form(min_length=1)], _caller: Caller) -> dict[str, str]:
        """A form route: the 415 rule must leave forms alone."""
        return {"name": name}

    @router.post("/rolled-back", responses=problem_responses(409))
    async def create_thing_then_fail(body: ThingCreate, session: SessionDep, request: Request, _caller: Caller) -> None:
        """Emits, then fails: nothing may remain."""
        await create_thing_in(session, request, body)
        raise Conflict("Changed my mind.")

    @router.get("", responses=problem_responses(422))
    async def list_things(session: SessionDep, page: PageDep, _caller: Caller) -> ThingPage:
        """Things, oldest first, keyset-paginated on (created_at, id)."""
        outbox = kit_tables.outbox
        order = [outbox.c.occurred_at, outbox.c.id]
        query = sa.select(outbox).where(outbox.c.type == "thing.created").order_by(*order).limit(page.limit + 1)
        after = keyset_after(order, page.cursor)
        if after is not None:
            query = query.where(after)
        rows = (await session.execute(query)).all()
        items, next_cursor = paginate_rows(rows, page.limit, key=lambda row: (row.occurred_at, row.id))
        return ThingPage(
            items=[
                ThingRead(id=row.id, name=row.data["name"], count=row.data["count"], created_at=row.occurred_at)
                for row in items
            ],
            next_cursor=next_cursor,
        )

    @router.get("/boom")
    async def explode(_caller: Caller) -> None:
        """Raises something unexpected."""
        raise RuntimeError("internal detail: password=hunter2 at /srv/secret/path.py")

    @router.post("/log", status_code=204)
    async def log_thing(body: dict[str, Any], request: Request, _caller: Caller) -> None:
        """Logs carelessly (the redaction processor must catch it)."""
        import structlog

        structlog.get_logger("tests.kit").info(
            "careless_log",
            email=body.get("email"),
            authorization=request.headers.get("authorization"),
            note=f"contact {body.get('email')} with {request.headers.get('x-api-key')}",
            headers=dict(request.headers),
        )

    return router


# --- consumers ----------------------------------------------------------------------------


@dataclass
class ConsumerBehaviour:
    """How a consumer treats `thing.created`: fail on some names, or fail N times first."""

    poison_names: set[str] = field(default_factory=set)
    fail_times: dict[str, int] = field(default_factory=dict)
    unavailable: bool = False
    applied: Counter[uuid.UUID] = field(default_factory=Counter)  # handler runs (committed or not)

    def handler(self, service: str) -> Any:
        async def on_thing_created(session: AsyncSession, event: Event[ThingCreated]) -> None:
            self.applied[event.id] += 1
            name = event.data.name
            if name in self.poison_names:
                raise ValueError(f"cannot handle thing {name}")
            if self.fail_times.get(name, 0) > 0:
                self.fail_times[name] -= 1
                raise ValueError(f"transient trouble with {name}")
            await emit(session, ThingSeen(event_id=event.id, by=service))

        return on_thing_created


async def ignore(session: AsyncSession, event: Event[Any]) -> None:
    """A handler that takes an event and does nothing with it."""


class CountingTransport(httpx.AsyncBaseTransport):
    """`http://<service>/...` to the in-process app; counts event ids posted per service."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}
        self.down: set[str] = set()
        self.posted: dict[str, Counter[str]] = {}
        self.posts: Counter[str] = Counter()
        self.latency = 0.0
        # (service, events) -> an answer to give instead of the app's, or None.
        self.intercept: Callable[[str, list[dict[str, Any]]], httpx.Response | None] | None = None

    def mount(self, host: str, app: FastAPI) -> None:
        self.apps[host] = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        self.posted[host] = Counter()

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        host = request.url.host
        transport = self.apps.get(host)
        is_delivery = request.method == "POST" and request.url.path == "/internal/events"
        if is_delivery and self.latency:
            await asyncio.sleep(self.latency)  # also before "connection refused": a slow timeout
        if transport is None or host in self.down:
            raise httpx.ConnectError(f"{host} is down", request=request)
        if is_delivery:
            self.posts[host] += 1
            events = (json.loads(request.content or b"{}") or {}).get("events") or []
            if self.intercept is not None and (answer := self.intercept(host, events)) is not None:
                return answer
            response = await transport.handle_async_request(request)
            if 200 <= response.status_code < 300:
                for event in events:
                    self.posted[host][event["id"]] += 1
            return response
        return await transport.handle_async_request(request)


# --- databases and the system ---------------------------------------------------------------


@dataclass
class KitDatabases:
    urls: dict[ServiceName, str]

    @classmethod
    async def create(cls) -> KitDatabases:
        urls: dict[ServiceName, str] = {}
        for role in ROLES:
            # The kit tables, as every service migrates them: a clone of the feedback template.
            urls[role] = await clone_template("feedback", database_name(f"kit_{worker_id()}_{role}"))
        return cls(urls)

    async def drop(self) -> None:
        await drop_databases([make_url(url).database or "" for url in self.urls.values()])

    def settings(self, **overrides: Any) -> Settings:
        values: dict[str, Any] = {
            "relay_retry_base_seconds": 10.0,  # tests make retries due with retry_now()
            "relay_retry_max_seconds": 60.0,
            "relay_max_attempts": 3,
            "relay_batch_size": 100,
        }
        values.update(overrides)
        return test_settings(self.urls, **values)


async def empty_tables(db: Database) -> None:
    async with db.engine.begin() as conn:
        for table in reversed(metadata.sorted_tables):
            await conn.execute(table.delete())


class KitSystem:
    def __init__(self, settings: Settings, subscriptions: Subscriptions = KIT_SUBSCRIPTIONS) -> None:
        self.settings = settings
        self.transport = CountingTransport()
        self.behaviour: dict[str, ConsumerBehaviour] = {name: ConsumerBehaviour() for name in CONSUMERS}
        self.apps: dict[str, FastAPI] = {
            "feedback": create_service_app(
                "feedback",
                settings,
                kit_tables=kit_tables,
                routers=[thing_router()],
                transport=self.transport,
                subscriptions=subscriptions,
            ),
            **{
                name: create_service_app(
                    name,
                    settings,
                    kit_tables=kit_tables,
                    routers=[],
                    event_handlers=self._handlers(name, subscriptions),
                    transport=self.transport,
                    subscriptions=subscriptions,
                )
                for name in CONSUMERS
            },
        }
        for name, app in self.apps.items():
            app.state.gates = {}
            app.state.entered = asyncio.Event()
            self.transport.mount(name, app)
        self._stack = contextlib.AsyncExitStack()

    def _handlers(self, name: ServiceName, subscriptions: Subscriptions) -> dict[type[EventModel], Any]:
        """`thing.created` goes to the consumer's behaviour; anything else it takes is ignored."""
        taken = subscriptions.get(name, frozenset())
        assert taken != "*", "kit consumers subscribe to contracts, not to everything"
        return {model: self.behaviour[name].handler(name) if model is ThingCreated else ignore for model in taken}

    async def __aenter__(self) -> KitSystem:
        for app in self.apps.values():
            await self._stack.enter_async_context(app.router.lifespan_context(app))
        for app in self.apps.values():
            await empty_tables(app.state.db)
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self._stack.aclose()

    @property
    def producer(self) -> FastAPI:
        return self.apps["feedback"]

    @property
    def relay(self) -> Any:
        return self.producer.state.relay

    def db(self, name: str = "feedback") -> Database:
        return self.apps[name].state.db  # type: ignore[no-any-return]

    def client(self, identity: Identity | None = SYSTEM, service: str = "feedback") -> httpx.AsyncClient:
        headers = {INTERNAL_TOKEN_HEADER: sign_internal_token(identity, self.settings)} if identity else {}
        return httpx.AsyncClient(transport=self.transport, base_url=f"http://{service}", headers=headers)

    async def emit(self, *names: str, occurred_at: datetime | None = None) -> list[uuid.UUID]:
        """Commit one `thing.created` per name in the producer's outbox."""
        drafts = [EventDraft(ThingCreated(name=name), occurred_at=occurred_at) for name in names]
        async with self.db().session() as session:
            ids = await emit_many(session, drafts)
            await session.commit()
        return ids

    async def rows(self, table: sa.Table, service: str = "feedback") -> list[Any]:
        async with self.db(service).session() as session:
            return list((await session.execute(sa.select(table))).all())

    async def seen(self, service: str) -> Counter[str]:
        """How many times each event id had its effect applied (committed) in `service`."""
        rows = await self.rows(kit_tables.outbox, service)
        return Counter(row.data["event_id"] for row in rows if row.type == "thing.seen")

    async def retry_now(self) -> None:
        """Make every backed-off (not parked) delivery due now, instead of sleeping."""
        pending = kit_tables.outbox_pending
        async with self.db().session() as session:
            await session.execute(pending.update().where(pending.c.status == PENDING).values(next_attempt_at=utcnow()))
            await session.commit()

    async def settle(self, rounds: int = 10) -> None:
        """Retry and drain until nothing more can be delivered."""
        for _ in range(rounds):
            await self.retry_now()
            await self.relay.drain()

    async def pending(self, subscriber: str | None = None) -> list[Any]:
        rows = await self.rows(kit_tables.outbox_pending)
        return [row for row in rows if subscriber is None or row.subscriber == subscriber]


@contextlib.asynccontextmanager
async def kit_system(
    dbs: KitDatabases, subscriptions: Subscriptions = KIT_SUBSCRIPTIONS, **overrides: Any
) -> AsyncIterator[KitSystem]:
    async with KitSystem(dbs.settings(**overrides), subscriptions) as system:
        yield system
