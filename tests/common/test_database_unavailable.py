"""A database that cannot take a request now is a 503 to retry, never a 500.

Found by the chaos test (`tests/e2e/test_chaos.py`): with the Postgres server at its
connection limit, `POST /v1/redemptions` answered `500 internal-error` ("sorry, too many
clients already", SQLSTATE 53300), which tells clients something is broken rather than
"retry shortly". The same holds for a server shutting down, a lost connection and an
exhausted connection pool, wherever the error surfaces: in a route (the problem
handlers) or in a middleware such as the gateway's caller identification (the request
context middleware). Other database errors stay 500.
"""

from __future__ import annotations

import asyncio
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import httpx
import pytest
import pytest_asyncio
import sqlalchemy as sa
from fastapi import FastAPI, Request
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncConnection
from starlette.middleware.base import BaseHTTPMiddleware
from starlette.responses import Response

from services.common.app import install_common
from services.common.db import Database
from services.common.events.inbox import _consumer_unavailable
from services.common.problems import database_unavailable
from services.common.settings import Settings
from tests.common.test_problems import assert_problem
from tests.pg import _admin, pg_url


class _DriverError(Exception):
    def __init__(self, message: str, sqlstate: str) -> None:
        super().__init__(message)
        self.sqlstate = sqlstate


def _dbapi_error(sqlstate: str) -> DBAPIError:
    return DBAPIError("SELECT 1", None, _DriverError("from the driver", sqlstate))


@pytest.mark.parametrize(
    ("sqlstate", "unavailable"),
    [
        ("53300", True),  # too many connections
        ("53100", True),  # disk full
        ("08006", True),  # connection failure
        ("57P01", True),  # admin shutdown
        ("57P03", True),  # cannot connect now (starting up)
        ("42P01", False),  # undefined table: a bug, not an outage
        ("23505", False),  # unique violation
        ("57014", False),  # query canceled (statement timeout): not the server's state
    ],
)
def test_which_database_errors_mean_unavailable(sqlstate: str, unavailable: bool) -> None:
    error = _dbapi_error(sqlstate)
    assert database_unavailable(error) is unavailable
    assert _consumer_unavailable(error) is unavailable  # the inbox answers 503 too: retried, never parked


@pytest_asyncio.fixture
async def limited_role() -> AsyncIterator[str]:
    """A login role allowed no connection at all: connecting as it fails with 53300."""
    role = f"qunyun_no_connections_{secrets.token_hex(4)}"

    async def create(conn: AsyncConnection) -> None:
        await conn.execute(sa.text(f'CREATE ROLE "{role}" LOGIN CONNECTION LIMIT 0'))

    async def drop(conn: AsyncConnection) -> None:
        await conn.execute(sa.text(f'DROP ROLE IF EXISTS "{role}"'))

    await _admin(create)
    try:
        yield role
    finally:
        await _admin(drop)


def _app(db: Database, *, in_middleware: bool = False) -> FastAPI:
    app = FastAPI()
    app.state.db = db

    async def query() -> None:
        async with db.session() as session:
            await session.execute(sa.text("SELECT 1"))

    @app.get("/things")
    async def things() -> dict[str, str]:
        await query()
        return {"status": "ok"}

    if in_middleware:

        async def identify(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
            await query()  # as the gateway looks up an API key before routing
            return await call_next(request)

        app.add_middleware(BaseHTTPMiddleware, dispatch=identify)
    install_common(app, "feedback", Settings())  # its middleware outermost, as in the gateway
    return app


def _url_as(role: str) -> str:
    """The test server's `postgres` database, logged in as `role` (TCP or socket URL alike)."""
    return make_url(pg_url("postgres")).set(username=role, password=None).render_as_string(hide_password=False)


@pytest.mark.parametrize("in_middleware", [False, True], ids=["route", "middleware"])
async def test_a_database_refusing_connections_is_503_with_retry_after(limited_role: str, in_middleware: bool) -> None:
    db = Database(_url_as(limited_role), Settings())
    try:
        app = _app(db, in_middleware=in_middleware)
        async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
            response = await client.get("/things", headers={"X-Request-ID": "req-53300"})
        body = assert_problem(response, 503, "service-unavailable")
        assert response.headers["retry-after"] == "1"
        assert response.headers["x-request-id"] == "req-53300"
        assert "too many connections" not in body["detail"]  # nothing from inside
    finally:
        await db.dispose()


async def test_an_exhausted_connection_pool_is_503() -> None:
    db = Database(pg_url("postgres"), Settings(db_pool_size=1, db_max_overflow=0, db_pool_timeout_seconds=0.2))
    try:
        app = _app(db)
        async with db.engine.connect() as held:  # the pool's only connection
            await held.execute(sa.text("SELECT 1"))
            async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client:
                response = await asyncio.wait_for(client.get("/things"), timeout=10)
        assert_problem(response, 503, "service-unavailable")
    finally:
        await db.dispose()
