"""The tickets' hot statements: the list's, built once per shape of filters and run on the read
pool, and filing's (the ticket INSERT guarded by the support config version, round-robin).

A list request names some of eight filters; each combination (and whether a cursor is
given) is one statement shape, compiled once to a `PreparedRead` and kept (at most a few
hundred shapes exist). Every value travels as a parameter, so Postgres prepares each shape
once per connection and a request costs one asyncpg round trip: no statement building,
no SQLAlchemy session, no ORM row processing (together most of a list request's CPU).
"""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import Database, PreparedRead, UTCDateTime, driver_sql, table_of
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

AGENTS = table_of(Agent)
CONFIG_VERSION = support_config_version
_FILED = (
    "id", "member_id", "community_id", "subject", "body", "category", "priority", "status", "tags", "assignee_id",
    "created_by", "created_at", "updated_at", "business_hours_only", "first_response_due_at", "resolution_due_at",
    "breached", "sanction_id",
)  # fmt: skip


def _insert_sql(*, guarded: bool) -> str:
    """INSERT ... SELECT of one ticket ($1..$n in `_FILED` order); guarded: only if the support
    config version is still the one given last."""
    values = sa.select(*(sa.bindparam(name, type_=TICKETS.c[name].type) for name in _FILED))
    if guarded:
        # Literal columns: every $n is a value of the ticket, then the version.
        one, zero = sa.literal_column("1", sa.SmallInteger()), sa.literal_column("0", sa.BigInteger())
        version = sa.select(CONFIG_VERSION.c.version).where(CONFIG_VERSION.c.id == one).scalar_subquery()
        values = values.where(sa.func.coalesce(version, zero) == sa.bindparam("config_version", type_=sa.BigInteger()))
    statement = TICKETS.insert().from_select(list(_FILED), values).returning(TICKETS.c.id)
    return driver_sql(statement)


_INSERT_GUARDED, _INSERT = _insert_sql(guarded=True), _insert_sql(guarded=False)


async def insert_ticket(session: AsyncSession, values: dict[str, Any], config_version: int | None) -> bool:
    """Insert the ticket in the session's transaction; with a `config_version`, only if the
    support config still has that version (False: nothing was written)."""
    connection = await session.connection()
    row = [values[name] for name in _FILED]
    if config_version is None:
        await connection.exec_driver_sql(_INSERT, tuple(row))
        return True
    result = await connection.exec_driver_sql(_INSERT_GUARDED, (*row, config_version))
    return result.first() is not None


async def assign_next_agent(session: AsyncSession, ticket_id: uuid.UUID, now: datetime) -> uuid.UUID | None:
    """Round-robin: the ticket goes to the enabled agent assigned least recently (never assigned
    first), in one statement. The chosen row is locked and stamped, so concurrent filings pick
    different agents (SKIP LOCKED moves a second filing on to the next agent rather than waiting)."""
    chosen = (
        sa.select(AGENTS.c.id)
        .where(AGENTS.c.disabled.is_(False))
        .order_by(AGENTS.c.last_assigned_at.asc().nulls_first(), AGENTS.c.first_seen_at, AGENTS.c.id)
        .limit(1)
        .with_for_update(skip_locked=True)
        .cte("chosen")
    )
    stamped = (
        AGENTS.update()
        .where(AGENTS.c.id == chosen.c.id)
        .values(last_assigned_at=now)
        .returning(AGENTS.c.id)
        .cte("stamped")
    )
    agent_id: uuid.UUID | None = await session.scalar(
        TICKETS.update()
        .where(TICKETS.c.id == ticket_id)
        .values(assignee_id=sa.select(stamped.c.id).scalar_subquery())
        .returning(TICKETS.c.assignee_id)
    )
    return agent_id
