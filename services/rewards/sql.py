"""Dialect helpers, so one Core statement works on Postgres and on SQLite."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def upsert(session: AsyncSession, table: sa.Table) -> Any:
    """`INSERT` that accepts `.on_conflict_do_update` / `.on_conflict_do_nothing` on either backend."""
    return (postgresql.insert if dialect_of(session) == "postgresql" else sqlite.insert)(table)


def greatest(session: AsyncSession, left: Any, right: Any) -> sa.ColumnElement[Any]:
    """The larger of two values (SQLite spells GREATEST as the two-argument MAX)."""
    if dialect_of(session) == "postgresql":
        return sa.func.greatest(left, right)
    return sa.func.max(left, right)


def table_of(model: Any) -> sa.Table:
    """The Core table behind a SQLModel class (hot paths use Core statements)."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table
