"""The rewards migrations build exactly the tables the models describe, and move data as they should."""

from __future__ import annotations

import secrets
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from services.common.db import UTCDateTime, create_engine
from services.common.migrations import downgrade, drop_database, ensure_database, upgrade, version_table
from services.rewards.models_registry import metadata
from tests.pg import pg_url
from tests.system import System


async def test_models_and_migrations_do_not_drift(system: System) -> None:
    def diff(connection: Any) -> list[Any]:
        context = MigrationContext.configure(
            connection, opts={"compare_type": True, "version_table": version_table("rewards")}
        )
        return list(compare_metadata(context, metadata))

    async with system.state("rewards").db.engine.connect() as connection:
        assert await connection.run_sync(diff) == []


async def test_stock_moves_into_buckets_and_back() -> None:
    """0003 spreads each limited reward's `stock` over its buckets; the downgrade sums them back."""
    url = pg_url(f"qunyun_test_stock_{secrets.token_hex(4)}")
    await ensure_database(url)
    engine = create_engine(url, pool=False)
    limited, unlimited = uuid.uuid4(), uuid.uuid4()
    try:
        await upgrade("rewards", url, "de7b4eb60e75")
        now = datetime.now(UTC)
        async with engine.begin() as connection:
            for reward_id, stock in ((limited, 37), (unlimited, None)):
                await connection.execute(
                    sa.text(
                        "INSERT INTO rewards (id, name, description, cost, stock, created_at, updated_at) "
                        "VALUES (:id, 'Mug', '', 5, :stock, :now, :now)"
                    ).bindparams(sa.bindparam("id", type_=sa.Uuid()), sa.bindparam("now", type_=UTCDateTime())),
                    {"id": reward_id, "stock": stock, "now": now},
                )
        await upgrade("rewards", url)
        async with engine.connect() as connection:
            stock_of = sa.text("SELECT sum(remaining), count(*) FROM reward_stock WHERE reward_id = :id").bindparams(
                sa.bindparam("id", type_=sa.Uuid())
            )
            assert tuple((await connection.execute(stock_of, {"id": limited})).one()) == (37, 16)
            assert tuple((await connection.execute(stock_of, {"id": unlimited})).one()) == (None, 0)
        await downgrade("rewards", url, "de7b4eb60e75")
        async with engine.connect() as connection:
            rows = await connection.execute(sa.text("SELECT stock FROM rewards ORDER BY stock"))
            assert sorted(rows.scalars().all(), key=lambda v: v is None) == [37, None]
    finally:
        await engine.dispose()
        await drop_database(url)
