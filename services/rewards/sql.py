"""Dialect helpers, so one Core statement works on Postgres and on SQLite."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import UTCDateTime, dialect_of


def greatest(session: AsyncSession, left: Any, right: Any) -> sa.ColumnElement[Any]:
    """The larger of two values (SQLite spells GREATEST as the two-argument MAX)."""
    if dialect_of(session) == "postgresql":
        return sa.func.greatest(left, right)
    return sa.func.max(left, right)


def is_postgres(session: AsyncSession) -> bool:
    return dialect_of(session) == "postgresql"


def _array_item(column: sa.Column[Any]) -> sa.types.TypeEngine[Any]:
    # Arrays carry aware datetimes as they are: UTCDateTime's per-value check would cost
    # a Python call per element, and every value here comes from aware `now`/event times.
    if isinstance(column.type, UTCDateTime):
        return sa.DateTime(timezone=True)
    return column.type


def array_rows(table: sa.Table, columns: Sequence[str], name: str = "v") -> Any:
    """`unnest(:a_<col>, ...) AS v(<col>, ...)`: rows from one array parameter per column,
    so a statement over any number of rows is one round trip with a constant SQL text
    (compiled and prepared once). Postgres only."""
    return (
        sa.func.unnest(*(sa.bindparam(f"a_{c}", type_=postgresql.ARRAY(_array_item(table.c[c]))) for c in columns))
        .table_valued(*columns, name=name)
        .render_derived()
    )


def insert_rows(session: AsyncSession, table: sa.Table, columns: Sequence[str]) -> Any:
    """`INSERT INTO table (columns)` of many rows, accepting `.on_conflict_*` and `.returning`:
    from column arrays on Postgres (`array_rows`), an executemany on SQLite. Pass the rows
    with `row_params`."""
    if is_postgres(session):
        source = array_rows(table, columns)
        return postgresql.insert(table).from_select(list(columns), sa.select(*(source.c[c] for c in columns)))
    return sqlite.insert(table)


def row_params(session: AsyncSession, columns: Sequence[str], rows: Iterable[Mapping[str, Any]]) -> Any:
    """The parameters of a statement built on `array_rows`/`insert_rows`: one list per column
    on Postgres, one dict per row on SQLite."""
    if is_postgres(session):
        materialized = rows if isinstance(rows, list) else list(rows)
        return {f"a_{c}": [row[c] for row in materialized] for c in columns}
    return [{c: row[c] for c in columns} for row in rows]
