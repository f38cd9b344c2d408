"""The time window of an analytics query: `[from, to)` as aware datetimes, checked once."""

from __future__ import annotations

from datetime import datetime, timedelta

from services.common.db import utcnow
from services.common.problems import Unprocessable

DEFAULT_WINDOW = timedelta(days=30)


def analytics_window(
    start: datetime | None, end: datetime | None, default: timedelta = DEFAULT_WINDOW
) -> tuple[datetime, datetime]:
    """`to` defaults to now, `from` to `default` before it; both carry an offset and `from < to`."""
    if (start is not None and start.tzinfo is None) or (end is not None and end.tzinfo is None):
        raise Unprocessable("from and to carry a time zone offset (RFC 3339).")
    end = end or utcnow()
    try:
        start = start or end - default
    except OverflowError as exc:
        raise Unprocessable(
            "to is too early to count back from.", errors=[{"loc": ["query", "to"], "msg": "out of range"}]
        ) from exc
    if start >= end:
        raise Unprocessable("from is before to.", errors=[{"loc": ["query", "from"], "msg": "must be before to"}])
    return start, end
