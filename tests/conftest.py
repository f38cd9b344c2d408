"""Fixtures shared by the whole suite.

The HTTP suite runs twice: on SQLite (the embedded default) and on real Postgres (the
production database). Postgres must be reachable: if it is not, the run fails loudly.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from tests.pg import pg_server, pg_url
from tests.system import System, running_system

BACKENDS = ["postgres"]


def pytest_sessionstart(session: pytest.Session) -> None:
    async def probe() -> None:
        engine = create_async_engine(pg_url("postgres"), poolclass=NullPool)
        try:
            async with engine.connect() as conn:
                await conn.execute(sa.text("SELECT 1"))
        finally:
            await engine.dispose()

    try:
        asyncio.run(asyncio.wait_for(probe(), timeout=10))
    except Exception as exc:
        raise pytest.UsageError(
            f"Postgres is not reachable at {pg_server()} ({exc!r}); the suite needs it "
            "(set QUNYUN_TEST_PG to another server)."
        ) from exc


class _Systems:
    """Starts one in-process system per backend, on first use, for the whole run."""

    def __init__(self) -> None:
        self.running: dict[str, System] = {}
        self._contexts: list[object] = []

    async def get(self, backend: str) -> System:
        if backend not in self.running:
            context = running_system(backend)
            self.running[backend] = await context.__aenter__()
            self._contexts.append(context)
        return self.running[backend]

    async def close(self) -> None:
        for context in reversed(self._contexts):
            await context.__aexit__(None, None, None)  # type: ignore[attr-defined]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def systems() -> AsyncIterator[_Systems]:
    holder = _Systems()
    try:
        yield holder
    finally:
        await holder.close()


@pytest_asyncio.fixture(params=BACKENDS)
async def system(request: pytest.FixtureRequest, systems: _Systems) -> System:
    """The whole system in-process, on each backend, with empty tables."""
    running = await systems.get(request.param)
    await running.reset()
    return running


@pytest_asyncio.fixture
async def pg_system(systems: _Systems) -> System:
    """The whole system on real Postgres (concurrency and locking tests)."""
    running = await systems.get("postgres")
    await running.reset()
    return running
