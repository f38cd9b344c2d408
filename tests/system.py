"""The whole system in one process: five apps wired to each other over ASGI.

`System` builds the gateway and the four services on fresh databases, routes every
inter-service HTTP call to the right in-process app, and offers clients for tests:

- `system.client(identity)`: through the gateway, authenticated as that caller;
- `system.direct(service, identity)`: straight to one service with an internal token;
- `await system.drain()`: run every relay until no event is pending (relay loops are off
  in tests, so event delivery happens exactly when a test asks for it);
- `await system.reset()`: empty every table a test wrote to, between tests;
- `await system.contract_violations()`: every outbox row whose data breaks its event's
  contract (the `system` fixture fails a test that wrote one).

Its databases are cloned from the run's migrated templates (`tests.pg`), so the
migrations are under test and a system starts in well under a second.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import uuid
from collections.abc import AsyncIterator, Mapping
from contextlib import AsyncExitStack
from importlib import import_module
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI
from pydantic import ValidationError
from sqlalchemy.engine import make_url

from services.common.contracts import EVENT_TYPES
from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, sign_internal_token
from services.common.settings import SERVICES, ServiceName, Settings
from tests.pg import clone_template, database_name, drop_databases, worker_id


class RoutingTransport(httpx.AsyncBaseTransport):
    """Sends `http://<service>/...` to that service's in-process app."""

    def __init__(self) -> None:
        self.apps: dict[str, httpx.ASGITransport] = {}

    def mount(self, host: str, app: FastAPI) -> None:
        self.apps[host] = httpx.ASGITransport(app=app, raise_app_exceptions=False)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        transport = self.apps.get(request.url.host)
        if transport is None:
            raise httpx.ConnectError(f"no in-process app for {request.url.host}", request=request)
        return await transport.handle_async_request(request)


def test_settings(database_urls: Mapping[ServiceName, str], **overrides: Any) -> Settings:
    """Settings for an in-process system whose services use these databases."""
    values: dict[str, Any] = {
        "env": "test",
        **{f"{name}_database_url": url for name, url in database_urls.items()},
        "relay_enabled": False,
        "rate_limit": "100000/minute",
        "webhook_allow_private": True,
        "log_level": "WARNING",
        # The machine's server allows 100 connections for every worker and e2e process of the
        # run: keep few idle ones, and overflow for the concurrency tests' bursts.
        "db_pool_size": 2,
        "db_max_overflow": 20,
        **{f"{name}_url": f"http://{name}" for name in SERVICES},
    }
    values.update(overrides)
    return Settings(**values)


class System:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.transport = RoutingTransport()
        self.apps: dict[str, FastAPI] = {}
        self._stack = AsyncExitStack()
        self._api_keys: dict[tuple[str, ...], str] = {}

    async def start(self) -> None:
        for name in SERVICES:
            module = import_module(f"services.{name}.app")
            app: FastAPI = module.create_app(self.settings, transport=self.transport)
            self.apps[name] = app
            self.transport.mount(name, app)
            await self._stack.enter_async_context(app.router.lifespan_context(app))

    async def stop(self) -> None:
        await self._stack.aclose()

    async def destroy(self) -> None:
        await drop_databases([make_url(self.settings.database_url_for(name)).database or "" for name in SERVICES])

    def state(self, service: str) -> Any:
        return self.apps[service].state

    async def reset(self) -> None:
        """Empty every table a test wrote to, in every service (not the alembic version tables).

        Truncating all ~60 tables costs about 0.3 s a test; finding the few a test touched
        (one `EXISTS` probe per table, one statement per service, the services in parallel)
        and truncating only those costs a few milliseconds."""
        await asyncio.gather(*(self._empty_written_tables(name) for name in SERVICES))
        self._api_keys.clear()
        for name in SERVICES:
            hook = getattr(self.state(name), "on_test_reset", None)
            if hook is not None:
                hook()

    async def _empty_written_tables(self, service: ServiceName) -> None:
        async with self.state(service).db.engine.begin() as conn:
            written = (await conn.execute(_written_tables_query(service))).scalars().all()
            if written:
                names = ", ".join(f'"{name}"' for name in written)
                await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))

    async def contract_violations(self) -> list[str]:
        """Every outbox row, in every service, whose data its event type's contract refuses
        (validated strictly, as producers are held to it). Tables are emptied between tests,
        so these are the events written during the current test."""
        found: list[str] = []
        for name in SERVICES:
            outbox = import_module(f"services.{name}.db").kit_tables.outbox
            async with self.state(name).db.engine.connect() as conn:
                batch_size = outbox.c.batch_size if "batch_size" in outbox.c else sa.null()
                query = sa.select(outbox.c.id, outbox.c.type, outbox.c.data, batch_size.label("batch_size"))
                rows = (await conn.execute(query)).all()
            for row in rows:
                contract = EVENT_TYPES.get(row.type)
                if contract is None:
                    found.append(f"{name} wrote {row.type} (event {row.id}), which has no contract")
                    continue
                # A batch row (batch ingest) carries many events: each is held to the contract.
                events = [(row.id, row.data)] if row.batch_size is None else [(e["id"], e["data"]) for e in row.data]
                if row.batch_size is not None and len(events) != row.batch_size:
                    found.append(f"{name} wrote a batch row {row.id} of {len(events)} events, sized {row.batch_size}")
                for event_id, data in events:
                    try:
                        contract.model_validate(data)
                    except ValidationError as exc:
                        found.append(f"{name} wrote {row.type} (event {event_id}) against its contract: {exc}")
        return found

    async def drain(self, rounds: int = 10) -> int:
        """Deliver every pending event, following chains (an event causing events)."""
        total = 0
        for _ in range(rounds):
            delivered = 0
            for name in SERVICES:
                relay = getattr(self.state(name), "relay", None)  # the gateway emits no events (yet)
                if relay is not None:
                    delivered += await relay.drain()
            total += delivered
            if delivered == 0:
                break
        return total

    def direct(self, service: str, identity: Identity | None = None) -> httpx.AsyncClient:
        """A client straight to one service; with an identity, it carries an internal token."""
        headers = {INTERNAL_TOKEN_HEADER: sign_internal_token(identity, self.settings)} if identity else {}
        return httpx.AsyncClient(transport=self.transport, base_url=f"http://{service}", headers=headers)

    def anonymous(self) -> httpx.AsyncClient:
        """A client to the gateway with no credentials."""
        return httpx.AsyncClient(transport=self.transport, base_url="http://gateway")

    async def client(self, identity: Identity) -> httpx.AsyncClient:
        """A client to the gateway authenticated as `identity` (staff, member or partner)."""
        from tests.gateway_auth import credentials_for  # the gateway's own test helpers

        headers = await credentials_for(self, identity)
        return httpx.AsyncClient(transport=self.transport, base_url="http://gateway", headers=headers)


def db_metadata(service: str) -> sa.MetaData:
    return import_module(f"services.{service}.models_registry").metadata  # type: ignore[no-any-return]


@functools.cache
def _written_tables_query(service: str) -> sa.TextClause:
    """`SELECT name ... WHERE EXISTS (a row)` over every table of the service, in one statement."""
    probes = [
        f"SELECT '{table.name}' WHERE EXISTS (SELECT FROM \"{table.name}\")"
        for table in db_metadata(service).sorted_tables
    ]
    return sa.text(" UNION ALL ".join(probes))


async def clone_databases(purpose: str) -> dict[ServiceName, str]:
    """Fresh databases for the five services, cloned from the run's migrated templates."""
    urls: dict[ServiceName, str] = {}
    for name in SERVICES:
        urls[name] = await clone_template(name, database_name(f"{purpose}_{worker_id()}_{name}"))
    return urls


@contextlib.asynccontextmanager
async def running_system(**overrides: Any) -> AsyncIterator[System]:
    """The whole system on fresh databases of its own (dropped afterwards)."""
    system = System(test_settings(await clone_databases("system"), **overrides))
    try:
        await system.start()
        yield system
    finally:
        await system.stop()
        await system.destroy()


def staff(*roles: str, id: str | None = None) -> Identity:
    return Identity(kind="staff", id=id or str(uuid.uuid4()), roles=roles)


def member(member_id: uuid.UUID | str) -> Identity:
    mid = uuid.UUID(str(member_id))
    return Identity(kind="member", id=str(mid), roles=("member",), member_id=mid)


def partner(*scopes: str, id: str | None = None) -> Identity:
    return Identity(kind="partner", id=id or str(uuid.uuid4()), scopes=scopes)
