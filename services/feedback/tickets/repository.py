"""The tickets' hot statements: the list's, built once per shape of filters and run on the read
pool, and filing's (the ticket, its round-robin agent and its event in one statement, guarded
by the support config version).

A list request names some of eight filters; each combination (and whether a cursor is
given) is one statement shape, compiled once to a `PreparedRead` and kept (at most a few
hundred shapes exist). Every value travels as a parameter, so Postgres prepares each shape
once per connection and a request costs one asyncpg round trip: no statement building,
no SQLAlchemy session, no ORM row processing (together most of a list request's CPU).
"""

from __future__ import annotations

import functools
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql

from services.common.db import Database, PreparedRead, UTCDateTime, table_of
from services.common.events import event_call
from services.feedback.sla.models import support_config_version
from services.feedback.tickets.models import Agent, Rating, Ticket

TICKETS = table_of(Ticket)
RATINGS = table_of(Rating)

# What a ticket's read model shows (`schemas.TicketRead`), and its rating.
_LISTED = tuple(
    TICKETS.c[name]
    for name in (
        "id", "member_id", "community_id", "subject", "body", "category", "priority", "status", "tags",
        "assignee_id", "created_at", "updated_at", "first_response_at", "resolved_at", "closed_at",
        "first_response_due_at", "resolution_due_at", "breached", "sanction_id",
    )
)  # fmt: skip
# Filters compared for equality, by column name.
_EQUALS = ("priority", "category", "assignee_id", "community_id", "member_id", "breached")
PAGE_KEYS = (TICKETS.c.created_at, TICKETS.c.id)


@dataclass(frozen=True, slots=True)
class TicketFilters:
    """What a list asks for: every given field narrows it (statuses: any of them)."""

    statuses: tuple[str, ...] = ()
    priority: str | None = None
    category: str | None = None
    assignee_id: uuid.UUID | None = None
    community_id: uuid.UUID | None = None
    member_id: uuid.UUID | None = None
    breached: bool | None = None
    tag: str | None = None


def _page_statement(shape: tuple[str, ...]) -> PreparedRead:
    """The page statement for these filter names (`status` one status, `statuses` several,
    `after_at` a cursor): newest first, keyset on (created_at, id), with the rating joined."""
    t, rating = TICKETS, RATINGS.alias("rating")
    where: list[sa.ColumnElement[bool]] = []
    for name in shape:
        if name == "status":
            where.append(t.c.status == sa.bindparam("status", type_=sa.String()))
        elif name == "statuses":
            where.append(t.c.status == sa.any_(sa.bindparam("statuses", type_=postgresql.ARRAY(sa.String()))))
        elif name == "tag":
            where.append(sa.bindparam("tag", type_=sa.String(64)) == sa.any_(t.c.tags))
        elif name == "after_at":  # with after_id: a cursor
            after = sa.tuple_(sa.bindparam("after_at", type_=UTCDateTime()), sa.bindparam("after_id", type_=sa.Uuid()))
            where.append(sa.tuple_(*PAGE_KEYS) < after)
        else:
            where.append(t.c[name] == sa.bindparam(name, type_=t.c[name].type))
    statement = (
        sa.select(
            *_LISTED,
            rating.c.rating.label("csat_rating"),
            rating.c.comment.label("csat_comment"),
            rating.c.created_at.label("csat_at"),
        )
        .outerjoin(rating, rating.c.ticket_id == t.c.id)
        .where(*where)
        .order_by(t.c.created_at.desc(), t.c.id.desc())
        .limit(sa.bindparam("limit", type_=sa.Integer()))
    )
    return PreparedRead(statement)


_PAGES: dict[tuple[str, ...], PreparedRead] = {}


async def ticket_page(
    db: Database, filters: TicketFilters, after: Sequence[Any] | None, limit: int
) -> list[asyncpg.Record]:
    """Up to `limit` tickets after the cursor's (created_at, id), as committed."""
    values: dict[str, Any] = {"limit": limit}
    if len(filters.statuses) == 1:
        values["status"] = filters.statuses[0]
    elif filters.statuses:
        values["statuses"] = list(filters.statuses)
    for name in _EQUALS:
        value = getattr(filters, name)
        if value is not None:
            values[name] = value
    if filters.tag is not None:
        values["tag"] = filters.tag
    if after is not None:
        values["after_at"], values["after_id"] = after  # typed by keyset_values(PAGE_KEYS, ...)
    shape = tuple(name for name in values if name not in ("limit", "after_id"))
    statement = _PAGES.get(shape)
    if statement is None:
        statement = _PAGES[shape] = _page_statement(shape)
    return await statement.fetch_all(db, **values)


# --- filing ------------------------------------------------------------------------------

# The ticket's values, $1 onwards in this order, with their types.
_FILED = (
    ("id", "uuid"), ("member_id", "uuid"), ("community_id", "uuid"), ("subject", "text"), ("body", "text"),
    ("category", "text"), ("priority", "text"), ("status", "text"), ("tags", "text[]"), ("assignee_id", "uuid"),
    ("created_by", "text"), ("created_at", "timestamptz"), ("updated_at", "timestamptz"),
    ("business_hours_only", "boolean"), ("first_response_due_at", "timestamptz"),
    ("resolution_due_at", "timestamptz"), ("breached", "boolean"), ("sanction_id", "uuid"),
)  # fmt: skip
_FILED_NAMES = tuple(name for name, _ in _FILED)
_VERSION = len(_FILED) + 1  # a guarded filing's parameter: the support config version it expects
_CREATED_AT = 1 + _FILED_NAMES.index("created_at")
# Round-robin: the enabled agent assigned least recently (never assigned first), locked and
# stamped in the statement, so concurrent filings pick different agents (SKIP LOCKED moves a
# second filing on to the next agent rather than waiting).
_ROUND_ROBIN = (
    "WITH chosen AS (SELECT id FROM {agents} WHERE disabled IS false{guard}"
    " ORDER BY last_assigned_at ASC NULLS FIRST, first_seen_at, id LIMIT 1 FOR UPDATE SKIP LOCKED),"
    " stamped AS (UPDATE {agents} SET last_assigned_at = ${created_at}::timestamptz FROM chosen"
    " WHERE {agents}.id = chosen.id RETURNING {agents}.id)\n"
)


@functools.cache
def _filing_sql(*, guarded: bool, round_robin: bool) -> str:
    """One ticket and its event (written from the RETURNING clause, so only with the ticket).
    Guarded: nothing is written unless the support config still has the version given
    (`tickets/config.py`). Round robin: the ticket goes to the next agent of the rotation."""
    guard = f"COALESCE((SELECT version FROM {support_config_version.name} WHERE id = 1), 0) = ${_VERSION}::bigint"
    values = [
        f"COALESCE(${n}::{type_}, (SELECT id FROM stamped))"
        if round_robin and name == "assignee_id"
        else f"${n}::{type_}"
        for n, (name, type_) in enumerate(_FILED, start=1)
    ]
    event = event_call(
        first=_VERSION + 1 if guarded else _VERSION,
        computed={"assignee_id": "assignee_id"} if round_robin else None,
    )
    statement = (
        f"INSERT INTO {TICKETS.name} ({', '.join(_FILED_NAMES)}) SELECT {', '.join(values)}"
        f"{f' WHERE {guard}' if guarded else ''} RETURNING assignee_id, {event} AS event_id"
    )
    if not round_robin:
        return statement
    agents = table_of(Agent).name
    return _ROUND_ROBIN.format(agents=agents, guard=f" AND {guard}" if guarded else "", created_at=_CREATED_AT) + (
        statement
    )


def filing_statement(
    values: dict[str, Any], event: Sequence[Any], *, config_version: int | None, round_robin: bool
) -> tuple[str, tuple[Any, ...]]:
    """The statement filing the ticket and its event (`events.event_args`), and its parameters:
    all or nothing, so it may run in a transaction or as one of its own. With a
    `config_version`: only if the support config still has it (no row: nothing was written).
    Its row: the `assignee_id` the ticket got."""
    guarded = config_version is not None
    sql = _filing_sql(guarded=guarded, round_robin=round_robin)
    ticket = [values[name] for name in _FILED_NAMES]
    return sql, ((*ticket, config_version, *event) if guarded else (*ticket, *event))
