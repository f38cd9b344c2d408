"""Alembic, one environment per service, each with its own version table.

`services/<service>/migrations/env.py` is three lines that call `run_migrations` with the
service's metadata. `upgrade`/`downgrade` drive alembic programmatically (the CLI and the
tests use them), and `ensure_database` creates a missing Postgres database first.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import sqlalchemy as sa
from alembic import command, context
from alembic.autogenerate.api import AutogenContext
from alembic.config import Config
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool
from sqlmodel.sql.sqltypes import AutoString

from services.common.db import UTCDateTime

SERVICES_DIR = Path(__file__).resolve().parent.parent


def version_table(service: str) -> str:
    return f"alembic_version_{service}"


def alembic_config(service: str, url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", str(SERVICES_DIR / service / "migrations"))
    config.set_main_option("file_template", "%%(year)d%%(month).2d%%(day).2d_%%(slug)s")
    config.attributes["service"] = service
    config.attributes["url"] = url
    return config


def _render_item(type_: str, obj: Any, autogen_context: AutogenContext) -> str | bool:
    if type_ == "type" and isinstance(obj, UTCDateTime):
        autogen_context.imports.add("from services.common.db import UTCDateTime")
        return "UTCDateTime()"
    if type_ == "type" and isinstance(obj, AutoString):
        return f"sa.String(length={obj.length})" if obj.length else "sa.String()"
    return False


def _configure(connection: sa.Connection | None, metadata: sa.MetaData, service: str, url: str) -> None:
    options: dict[str, Any] = {
        "target_metadata": metadata,
        "version_table": version_table(service),
        "render_item": _render_item,
        "compare_type": True,
        "compare_server_default": False,
    }
    if connection is None:
        context.configure(url=url, literal_binds=True, **options)
    else:
        context.configure(connection=connection, **options)


def run_migrations(metadata: sa.MetaData) -> None:
    """Body of every service's env.py."""
    config = context.config
    service, url = config.attributes["service"], config.attributes["url"]
    if context.is_offline_mode():
        _configure(None, metadata, service, url)
        with context.begin_transaction():
            context.run_migrations()
        return

    def do_run(connection: sa.Connection) -> None:
        _configure(connection, metadata, service, url)
        with context.begin_transaction():
            context.run_migrations()

    async def run_async() -> None:
        engine = create_async_engine(url, poolclass=NullPool)
        try:
            async with engine.connect() as connection:
                await connection.run_sync(do_run)
                await connection.commit()
        finally:
            await engine.dispose()

    asyncio.run(run_async())


async def ensure_database(url: str) -> bool:
    """Create the database named by `url` if it is missing; True if it was created."""
    parsed = make_url(url)
    name = parsed.database or ""
    admin = create_async_engine(parsed.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            exists = await conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name})
            if exists:
                return False
            try:
                await conn.execute(sa.text(f"CREATE DATABASE {_quoted(name)}"))
            except sa.exc.DBAPIError:
                # Another process (a second replica's migrate job, a parallel test) won the race.
                if await conn.scalar(sa.text("SELECT 1 FROM pg_database WHERE datname = :n"), {"n": name}):
                    return False
                raise
            return True
    finally:
        await admin.dispose()


def _quoted(identifier: str) -> str:
    return '"' + identifier.replace('"', '""') + '"'


async def drop_database(url: str) -> None:
    parsed = make_url(url)
    admin = create_async_engine(parsed.set(database="postgres"), poolclass=NullPool, isolation_level="AUTOCOMMIT")
    try:
        async with admin.connect() as conn:
            await conn.execute(sa.text(f"DROP DATABASE IF EXISTS {_quoted(parsed.database or '')} WITH (FORCE)"))
    finally:
        await admin.dispose()


def upgrade_sync(service: str, url: str, revision: str = "head") -> None:
    command.upgrade(alembic_config(service, url), revision)


def downgrade_sync(service: str, url: str, revision: str = "base") -> None:
    command.downgrade(alembic_config(service, url), revision)


async def upgrade(service: str, url: str, revision: str = "head") -> None:
    """Run alembic in a worker thread: its env.py runs its own event loop."""
    await asyncio.to_thread(upgrade_sync, service, url, revision)


async def downgrade(service: str, url: str, revision: str = "base") -> None:
    await asyncio.to_thread(downgrade_sync, service, url, revision)


def make_revision_sync(service: str, url: str, message: str) -> None:
    """Autogenerate a revision from the difference between models and the database."""
    command.revision(alembic_config(service, url), message=message, autogenerate=True)
