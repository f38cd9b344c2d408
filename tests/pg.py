"""The Postgres server the tests run on, and the run's databases on it.

`QUNYUN_TEST_PG` names the server: a SQLAlchemy URL without a database, over TCP or a Unix
socket (`postgresql+asyncpg://postgres@/?host=/path/to/socket-dir`). When it is unset, the
suite's `pytest_configure` (see `tests/conftest.py`) sets it: the machine's server on
127.0.0.1:5432 if that answers, else an embedded server started for the run.

Migrating five services takes seconds, cloning a migrated database a few milliseconds, so
the run migrates one template database per service once (in the pytest controller) and
every xdist worker clones its own databases from them (`CREATE DATABASE ... TEMPLATE`).
Every database a run creates carries the run id in its name, so the controller drops all
of them at the end, whatever a worker left behind.

Build database URLs with `pg_url`, never by string concatenation: a socket URL keeps its
`?host=` after the database name.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable

import sqlalchemy as sa
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncConnection, create_async_engine
from sqlalchemy.pool import NullPool

from services.common.migrations import upgrade
from services.common.settings import SERVICES

SERVER_ENV = "QUNYUN_TEST_PG"
RUN_ENV = "QUNYUN_TEST_RUN"  # set by the controller, inherited by xdist workers
LOCAL_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
EMBEDDED = "embedded"  # QUNYUN_TEST_PG=embedded: a server of the run's own, whatever else answers
_NAME_SLOT = "qunyun-database-name-slot"


def pg_server() -> str:
    return os.environ.get(SERVER_ENV, LOCAL_SERVER)


def pg_url(database: str) -> str:
    """The URL of one database on the test server (`database` may hold a `{service}` slot)."""
    # SQLAlchemy would percent-encode the braces of a `{service}` slot: put the name in after.
    url = make_url(pg_server()).set(database=_NAME_SLOT).render_as_string(hide_password=False)
    return url.replace(_NAME_SLOT, database)


def run_id() -> str:
    """This run's id (one per `pytest` invocation, shared by its workers)."""
    return os.environ.setdefault(RUN_ENV, secrets.token_hex(4))


def worker_id() -> str:
    return os.environ.get("PYTEST_XDIST_WORKER", "main")


def database_name(purpose: str) -> str:
    """A fresh database name of this run: `qunyun_<run>_<purpose>_<random>`, dropped at the end."""
    return f"qunyun_{run_id()}_{purpose}_{secrets.token_hex(3)}"


def template_name(service: str) -> str:
    return f"qunyun_{run_id()}_template_{service}"


async def answers(server_url: str, timeout: float = 3.0) -> bool:
    """Whether a Postgres server accepts connections at `server_url`."""
    engine = create_async_engine(
        make_url(server_url).set(database="postgres"), poolclass=NullPool, connect_args={"timeout": timeout}
    )
    try:
        async with engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))
        return True
    except Exception:
        return False
    finally:
        await engine.dispose()


async def _admin(work: Callable[[AsyncConnection], Awaitable[None]]) -> None:
    """Run `work` on a connection to the server's `postgres` database, outside a transaction."""
    engine = create_async_engine(pg_url("postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with engine.connect() as conn:
            await work(conn)
    finally:
        await engine.dispose()


def _quoted(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


async def migrate_templates() -> None:
    """Create and migrate one template database per service (alembic is not thread-safe:
    one service after another)."""

    async def create(conn: AsyncConnection) -> None:
        for service in SERVICES:
            await conn.execute(sa.text(f"CREATE DATABASE {_quoted(template_name(service))}"))

    await _admin(create)
    for service in SERVICES:
        await upgrade(service, pg_url(template_name(service)))


async def clone_template(service: str, name: str) -> str:
    """A new database `name` holding `service`'s migrated schema; its URL."""

    async def clone(conn: AsyncConnection) -> None:
        await conn.execute(sa.text(f"CREATE DATABASE {_quoted(name)} TEMPLATE {_quoted(template_name(service))}"))

    await _admin(clone)
    return pg_url(name)


async def drop_databases(names: list[str]) -> None:
    """Drop databases, in parallel: each DROP DATABASE waits for a checkpoint (about half a
    second each, one after another), and concurrent drops share one."""
    await asyncio.gather(*(_admin(_dropping(name)) for name in names))


def _dropping(name: str) -> Callable[[AsyncConnection], Awaitable[None]]:
    async def drop(conn: AsyncConnection) -> None:
        await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quoted(name)} WITH (FORCE)"))

    return drop


async def drop_run_databases() -> None:
    """Drop every database this run created (templates, workers' clones, per-test ones)."""
    names: list[str] = []

    async def find(conn: AsyncConnection) -> None:
        query = sa.text("SELECT datname FROM pg_database WHERE starts_with(datname, :prefix)")
        names.extend((await conn.execute(query, {"prefix": f"qunyun_{run_id()}_"})).scalars())

    await _admin(find)
    await drop_databases(names)


@contextlib.asynccontextmanager
async def fresh_database(service: str, purpose: str) -> AsyncIterator[str]:
    """A migrated database of `service`'s for one test (a clone of the template); its URL."""
    name = database_name(f"{purpose}_{worker_id()}")
    url = await clone_template(service, name)
    try:
        yield url
    finally:
        await drop_databases([name])
