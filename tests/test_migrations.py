"""Every service's migrations, on a fresh Postgres database.

Upgrade from empty to head, downgrade to base (nothing left but the version table),
upgrade again; after each upgrade the models and the migrated schema must not differ
(alembic autogenerate finds nothing), and each service keeps its own version table.
"""

from __future__ import annotations

import asyncio
import re
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.common.migrations import (
    alembic_config,
    downgrade,
    drop_database,
    ensure_database,
    upgrade,
    version_table,
)
from services.common.settings import SERVICES
from tests.pg import pg_url
from tests.system import db_metadata

REVISION_FILE = re.compile(r"^\d{8}_\d{4}_[a-z0-9_]+\.py$")


@pytest_asyncio.fixture
async def fresh_url() -> AsyncIterator[str]:
    """A URL template ({service}) for empty databases, dropped afterwards."""
    template = pg_url(f"qunyun_migr_{secrets.token_hex(4)}_{{service}}")
    yield template
    for service in SERVICES:
        await drop_database(template.format(service=service))


async def _table_names(url: str) -> set[str]:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda sync: sa.inspect(sync).get_table_names()))
    finally:
        await engine.dispose()


async def _drift(service: str, url: str) -> list[Any]:
    """What autogenerate would write for this service now (nothing, when models and schema agree)."""
    metadata = db_metadata(service)
    opts = {"compare_type": True, "version_table": version_table(service)}
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(
                lambda sync: compare_metadata(MigrationContext.configure(sync, opts=opts), metadata)
            )
    finally:
        await engine.dispose()


async def _current_revision(service: str, url: str) -> str | None:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            revision = await conn.scalar(sa.text(f"SELECT version_num FROM {version_table(service)}"))
            return str(revision) if revision is not None else None
    finally:
        await engine.dispose()


def _head(service: str) -> str:
    heads = ScriptDirectory.from_config(alembic_config(service, pg_url("unused"))).get_heads()
    assert len(heads) == 1, f"{service} has {len(heads)} migration heads ({heads}); merge them"
    return heads[0]


@pytest.mark.parametrize("service", SERVICES)
async def test_upgrade_downgrade_upgrade_without_drift(fresh_url: str, service: str) -> None:
    url = fresh_url.format(service=service)
    model_tables = {table.name for table in db_metadata(service).sorted_tables}
    assert await ensure_database(url) is True

    await upgrade(service, url)
    assert await _table_names(url) == model_tables | {version_table(service)}
    assert await _current_revision(service, url) == _head(service)
    assert await _drift(service, url) == []

    await downgrade(service, url)
    assert await _table_names(url) <= {version_table(service)}

    await upgrade(service, url)
    assert await _table_names(url) == model_tables | {version_table(service)}
    assert await _drift(service, url) == []


async def test_concurrent_ensure_database_creates_it_once() -> None:
    url = pg_url(f"qunyun_migr_{secrets.token_hex(4)}_race")
    try:
        created = await asyncio.gather(*(ensure_database(url) for _ in range(4)))
        assert sorted(created) == [False, False, False, True]
        assert await ensure_database(url) is False
    finally:
        await drop_database(url)


@pytest.mark.parametrize("service", SERVICES)
def test_revision_files_are_named_by_date_and_number(service: str) -> None:
    versions = Path(alembic_config(service, pg_url("unused")).get_main_option("script_location") or "") / "versions"
    names = sorted(path.name for path in versions.glob("*.py"))
    assert names, f"{service} has no migrations"
    assert [name for name in names if not REVISION_FILE.match(name)] == []
    numbers = [name.split("_")[1] for name in names]
    assert len(numbers) == len(set(numbers)), f"{service} has two migrations with the same number"
