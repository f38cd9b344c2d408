"""Portable SQL pieces: the few places where SQLite and Postgres spell things differently."""

from __future__ import annotations

from datetime import date
from typing import Any

import sqlalchemy as sa


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
