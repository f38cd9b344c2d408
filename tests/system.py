"""The whole system in one process: five apps wired to each other over ASGI.

`System` builds the gateway and the four services on fresh databases (migrated with
alembic, so the migrations are under test too), routes every inter-service HTTP call
to the right in-process app, and offers clients for tests:

- `system.client(identity)`: through the gateway, authenticated as that caller;
- `system.direct(service, identity)`: straight to one service with an internal token;
- `await system.drain()`: run every relay until no event is pending (relay loops are off
  in tests, so event delivery happens exactly when a test asks for it);
- `await system.reset()`: empty every table between tests.
"""

from __future__ import annotations

import contextlib
import secrets
import tempfile
import uuid
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack
from importlib import import_module
from pathlib import Path
from typing import Any

import httpx
import sqlalchemy as sa
from fastapi import FastAPI

from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, sign_internal_token
from services.common.migrations import drop_database, ensure_database, upgrade
from services.common.settings import SERVICES, Settings
from tests.pg import pg_url


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


def test_settings(backend: str, run_id: str, data_dir: Path, **overrides: Any) -> Settings:
    if backend == "postgres":
        database_url = pg_url(f"qunyun_test_{run_id}_{{service}}")
    else:
        database_url = f"sqlite+aiosqlite:///{data_dir.as_posix()}/{{service}}.db"
    values: dict[str, Any] = {
        "env": "test",
        "database_url": database_url,
        "relay_enabled": False,
        "rate_limit": "100000/minute",
        "webhook_allow_private": True,
        "log_level": "WARNING",
        "db_pool_size": 5,
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

    @property
    def backend(self) -> str:
        return "postgres" if self.settings.database_url.startswith("postgresql") else "sqlite"

    async def start(self) -> None:
        for name in SERVICES:
            url = self.settings.database_url_for(name)
            await ensure_database(url)
            await upgrade(name, url)
        for name in SERVICES:
            module = import_module(f"services.{name}.app")
            app: FastAPI = module.create_app(self.settings, transport=self.transport)
            self.apps[name] = app
            self.transport.mount(name, app)
            await self._stack.enter_async_context(app.router.lifespan_context(app))

    async def stop(self) -> None:
        await self._stack.aclose()

    async def destroy(self) -> None:
        for name in SERVICES:
            with contextlib.suppress(Exception):
                await drop_database(self.settings.database_url_for(name))

    def state(self, service: str) -> Any:
        return self.apps[service].state

    async def reset(self) -> None:
        """Empty every table of every service (not the alembic version tables)."""
        for name in SERVICES:
            db = self.state(name).db
            tables = list(reversed(db_metadata(name).sorted_tables))
            async with db.engine.begin() as conn:
                names = ", ".join(f'"{t.name}"' for t in tables)
                await conn.execute(sa.text(f"TRUNCATE {names} RESTART IDENTITY CASCADE"))
        self._api_keys.clear()
        for name in SERVICES:
            hook = getattr(self.state(name), "on_test_reset", None)
            if hook is not None:
                hook()

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


@contextlib.asynccontextmanager
async def running_system(backend: str, **overrides: Any) -> AsyncIterator[System]:
    run_id = secrets.token_hex(4)
    with tempfile.TemporaryDirectory(prefix="qunyun-test-") as tmp:
        system = System(test_settings(backend, run_id, Path(tmp), **overrides))
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
