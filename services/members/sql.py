"""Portable SQL pieces: the few places where SQLite and Postgres spell things differently."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import UTCDateTime


def dialect_of(session: AsyncSession) -> str:
    return session.get_bind().dialect.name


def insert_for(session: AsyncSession, table: sa.Table) -> Any:
    """An INSERT that supports ON CONFLICT on this session's backend."""
    if dialect_of(session) == "postgresql":
        return postgresql.insert(table)
    return sqlite.insert(table)


def days_since(day: sa.ColumnElement[Any], origin: date, dialect: str) -> sa.ColumnElement[int]:
    """Whole days from `origin` to the date column `day` (a date minus a date)."""
    if dialect == "postgresql":
        return sa.cast(day - sa.literal(origin, sa.Date), sa.Integer)
    return sa.cast(sa.func.julianday(day) - sa.func.julianday(sa.literal(origin.isoformat())), sa.Integer)


def weeks_since(day: sa.ColumnElement[Any], origin: date, dialect: str) -> sa.ColumnElement[int]:
    """Whole weeks from `origin` to `day` (for days on or after `origin`)."""
    return days_since(day, origin, dialect) // 7


def like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def keyset_order(*columns: sa.ColumnElement[Any]) -> tuple[sa.ColumnElement[Any], ...]:
    """Sort columns for `keyset_after`. UTCDateTime does not report `datetime` as its Python
    type, so the kit would bind the cursor's text as-is; coerce to a plain DateTime."""
    return tuple(
        sa.type_coerce(c, sa.DateTime(timezone=True)) if isinstance(c.type, UTCDateTime) else c for c in columns
    )
