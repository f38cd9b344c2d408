"""The rewards migrations build exactly the tables the models describe, on both backends."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.common.migrations import version_table
from services.rewards.models_registry import metadata
from tests.system import System


async def test_models_and_migrations_do_not_drift(system: System) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": version_table("rewards")}
        )
        return list(compare_metadata(context, metadata))

    async with system.state("rewards").db.engine.connect() as connection:
        assert await connection.run_sync(diff) == []
