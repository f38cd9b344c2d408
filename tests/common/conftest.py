"""Fixtures for the kit's own tests: a kit-built app and two consumers on fresh databases.

`kit` runs each test on SQLite and on Postgres; `pg_kit` on Postgres only (concurrency).
The databases are created and migrated once per backend per run, emptied per test.
"""

from __future__ import annotations

import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from tests.common.kit import KitDatabases, KitSystem, kit_system


class _KitDatabases:
    def __init__(self, data_dir: Path) -> None:
        self.data_dir = data_dir
        self.created: dict[str, KitDatabases] = {}

    async def get(self, backend: str) -> KitDatabases:
        if backend not in self.created:
            self.created[backend] = await KitDatabases.create(backend, self.data_dir)
        return self.created[backend]


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def kit_databases() -> AsyncIterator[_KitDatabases]:
    with tempfile.TemporaryDirectory(prefix="qunyun-kit-") as tmp:
        holder = _KitDatabases(Path(tmp))
        try:
            yield holder
        finally:
            for dbs in holder.created.values():
                await dbs.drop()


@pytest_asyncio.fixture(params=["postgres"])
async def kit_dbs(request: pytest.FixtureRequest, kit_databases: _KitDatabases) -> KitDatabases:
    """The kit databases of one backend (build a system with custom settings from them)."""
    return await kit_databases.get(request.param)


@pytest_asyncio.fixture
async def pg_kit_dbs(kit_databases: _KitDatabases) -> KitDatabases:
    return await kit_databases.get("postgres")


@pytest_asyncio.fixture
async def kit(kit_dbs: KitDatabases) -> AsyncIterator[KitSystem]:
    async with kit_system(kit_dbs) as system:
        yield system


@pytest_asyncio.fixture
async def pg_kit(pg_kit_dbs: KitDatabases) -> AsyncIterator[KitSystem]:
    async with kit_system(pg_kit_dbs) as system:
        yield system
