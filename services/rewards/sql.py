"""Array statements: many rows sent as one array parameter per column and `unnest`ed, so a
statement over any number of rows is one round trip with a constant SQL text (compiled and
prepared once)."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any, cast

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import UTCDateTime


def _array_item(column: sa.Column[Any]) -> sa.types.TypeEngine[Any]:
    # Arrays carry aware datetimes as they are: UTCDateTime's per-value check would cost
    # a Python call per element, and every value here comes from aware `now`/event times.
    if isinstance(column.type, UTCDateTime):
        return sa.DateTime(timezone=True)
    return column.type


def array_rows(table: sa.Table, columns: Sequence[str], name: str = "v", prefix: str = "a") -> Any:
    """`unnest(:<prefix>_<col>, ...) AS <name>(<col>, ...)`: rows from one array parameter
    per column (give each a prefix of its own when several share one statement)."""
    return (
        sa.func.unnest(
            *(sa.bindparam(f"{prefix}_{c}", type_=postgresql.ARRAY(_array_item(table.c[c]))) for c in columns)
        )
        .table_valued(*columns, name=name)
        .render_derived()
    )


def insert_rows(table: sa.Table, columns: Sequence[str]) -> Any:
    """`INSERT INTO table (columns) SELECT ... FROM unnest(...)` of many rows, accepting
    `.on_conflict_*` and `.returning`. Pass the rows with `row_params`."""
    source = array_rows(table, columns)
    return postgresql.insert(table).from_select(list(columns), sa.select(*(source.c[c] for c in columns)))


def row_params(columns: Sequence[str], rows: Iterable[Mapping[str, Any]], prefix: str = "a") -> dict[str, list[Any]]:
    """The parameters of a statement built on `array_rows`/`insert_rows`: one list per column."""
    materialized = rows if isinstance(rows, list) else list(rows)
    return {f"{prefix}_{c}": [row[c] for row in materialized] for c in columns}


async def fetch_row(session: AsyncSession, sql: str, *args: Any) -> Mapping[str, Any] | None:
    """Run a SQL text with `$n` parameters on the session's connection (in its transaction):
    its first row, by column name (as an asyncpg record reads, so a statement's outcome reads
    the same from either). For statements written as SQL (a repository's single-statement
    CTEs): no compilation and no parameter processing, the values go to asyncpg as they are."""
    connection = await session.connection()
    result = await connection.exec_driver_sql(sql, args)
    return cast(Mapping[str, Any] | None, result.mappings().first())


async def fetch_rows(session: AsyncSession, sql: str, *args: Any) -> Sequence[Any]:
    """As `fetch_row`, every row (named tuples: `row.member_id`)."""
    connection = await session.connection()
    result = await connection.exec_driver_sql(sql, args)
    return result.all()
