"""Cursor pagination: `?limit=&cursor=` in, `{items, next_cursor}` out.

Cursors are opaque (URL-safe base64 of a JSON list of the sort key values of the last
row), so pages stay stable while rows are inserted, and the database walks an index
(keyset pagination) instead of skipping OFFSET rows.
"""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import Sequence
from datetime import datetime
from typing import Annotated, Any, Generic, TypeVar

import orjson
import sqlalchemy as sa
from fastapi import Depends, Query
from pydantic import BaseModel

from services.common.problems import Unprocessable

T = TypeVar("T")

DEFAULT_LIMIT = 50
MAX_LIMIT = 200


class Page(BaseModel, Generic[T]):
    items: list[T]
    next_cursor: str | None = None


class PageParams(BaseModel):
    limit: int
    cursor: str | None


async def page_params(  # async: a plain `def` dependency costs every list request a thread hop
    limit: Annotated[int, Query(ge=1, le=MAX_LIMIT, description="Items per page")] = DEFAULT_LIMIT,
    cursor: Annotated[str | None, Query(max_length=500, description="`next_cursor` of the previous page")] = None,
) -> PageParams:
    return PageParams(limit=limit, cursor=cursor)


PageDep = Annotated[PageParams, Depends(page_params)]


def encode_cursor(values: Sequence[Any]) -> str:
    raw = json.dumps([str(v) if not isinstance(v, int | float | str | None) else v for v in values])
    return base64.urlsafe_b64encode(raw.encode()).decode().rstrip("=")


def decode_cursor(cursor: str, size: int) -> list[Any]:
    try:
        padded = cursor + "=" * (-len(cursor) % 4)
        values = json.loads(base64.urlsafe_b64decode(padded.encode()))
    except (ValueError, UnicodeDecodeError) as exc:
        raise _invalid_cursor() from exc
    if not isinstance(values, list) or len(values) != size:
        raise _invalid_cursor()
    return values


def keyset_after(
    columns: Sequence[sa.ColumnElement[Any]], cursor: str | None, *, descending: bool = False
) -> sa.ColumnElement[bool] | None:
    """The WHERE clause for rows after the cursor, ordered by `columns` (a tuple comparison).

    The columns must be NOT NULL and end with a unique one (usually `id`), so rows with
    equal sort keys are neither skipped nor repeated across pages.
    """
    typed = keyset_values(columns, cursor)
    if typed is None:
        return None
    left = sa.tuple_(*columns)
    right = sa.tuple_(*[sa.literal(v, type_=col.type) for col, v in zip(columns, typed, strict=True)])
    return left < right if descending else left > right


def keyset_values(columns: Sequence[sa.ColumnElement[Any]], cursor: str | None) -> list[Any] | None:
    """The cursor's sort key values, typed as `columns` (None without a cursor; 422 if forged):
    for statements built once that take them as parameters."""
    if cursor is None:
        return None
    values = decode_cursor(cursor, len(columns))
    try:
        return [_coerce(col, v) for col, v in zip(columns, values, strict=True)]
    except Exception as exc:  # whatever a forged cursor holds, it is the caller's error
        raise _invalid_cursor() from exc


def _invalid_cursor() -> Unprocessable:
    return Unprocessable("The cursor is not valid.", slug="invalid-cursor", title="Invalid cursor")


def _python_type(type_: sa.types.TypeEngine[Any]) -> type:
    python_type = type_.python_type
    while python_type is object and isinstance(type_, sa.types.TypeDecorator):
        type_ = type_.impl_instance
        python_type = type_.python_type
    return python_type


def _coerce(column: sa.ColumnElement[Any], value: Any) -> Any:
    if value is None:
        raise ValueError("sort keys are never null")
    python_type = _python_type(column.type)
    if python_type is datetime:
        if not isinstance(value, str):
            raise TypeError("a timestamp in a cursor is a string")
        parsed = datetime.fromisoformat(value)
        if parsed.tzinfo is None:
            raise ValueError("a timestamp in a cursor carries its offset")
        return parsed
    if python_type is bool:
        if not isinstance(value, bool):
            raise TypeError("expected a boolean")
        return value
    if python_type is float:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise TypeError("expected a number")
        return float(value)
    if python_type is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise TypeError("expected an integer")
        return value
    if python_type is str:
        if not isinstance(value, str):
            raise TypeError("expected a string")
        return value
    if isinstance(value, python_type):
        return value
    if not isinstance(value, str):
        raise TypeError(f"expected {python_type.__name__} as a string")
    return python_type(value)


def paginate_rows(rows: Sequence[T], limit: int, key: Any) -> tuple[list[T], str | None]:
    """Given up to limit+1 rows, return the page and the cursor for the next one."""
    items = list(rows[:limit])
    next_cursor = encode_cursor(key(items[-1])) if len(rows) > limit and items else None
    return items, next_cursor


def page_json(items: Sequence[dict[str, Any]], next_cursor: str | None) -> bytes:
    """`{items, next_cursor}` as JSON, written by orjson straight from dicts already in the
    shape of the page's item model, with UUIDs and UTC datetimes as pydantic writes them: a
    hot list skips building and validating a model per row (tests hold each list's items
    equal to the same resource read by id)."""
    return orjson.dumps({"items": items, "next_cursor": next_cursor}, option=orjson.OPT_UTC_Z, default=_uuid_text)


def _uuid_text(value: Any) -> str:
    # asyncpg's UUID type is a subclass orjson does not take.
    if isinstance(value, uuid.UUID):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")
