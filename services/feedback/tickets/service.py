"""The ticket rules: filing, the status machine, comments, CSAT, assignment.

A resolution owes the owner a survey: it is written with the resolution and asked of
content by the survey job, after the commit (`tickets/surveys.py`).

Service functions only add and flush; the request's session commits once. Every change
that partners hear about writes its event in the same transaction. Mutations lock the
ticket row first, so two agents acting at once are serialized, not interleaved.
"""

from __future__ import annotations

import uuid
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

import asyncpg
import orjson
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession
from sqlmodel import col

from services.common.contracts.feedback import (
    CsatReceived,
    TicketCommented,
    TicketCreated,
    TicketStatusChanged,
)
from services.common.db import Database, new_id, table_of, transaction, wake_after_commit
from services.common.events import OUTBOX_CHANNEL, EventDraft, Outbox, emit, event_args
from services.common.identity import Identity
from services.common.pagination import PageParams, keyset_after, keyset_values, page_json, paginate_rows
from services.common.problems import Forbidden, Unprocessable
from services.feedback.moderation import appeals
from services.feedback.sla import service as sla
from services.feedback.tickets import policy, repository, surveys
from services.feedback.tickets.config import SupportConfig, SupportConfigCache
from services.feedback.tickets.errors import (
    AlreadyRated,
    InvalidTransition,
    ReopenWindowPassed,
    TicketNotFound,
    TicketNotResolved,
)
from services.feedback.tickets.models import Agent, Comment, Rating, SupportSettings, Ticket
from services.feedback.tickets.repository import TicketFilters
from services.feedback.tickets.schemas import (
    AgentPage,
    AgentRead,
    CommentCreate,
    CommentPage,
    CommentRead,
    RatingCreate,
    RatingRead,
    SlaRead,
    SupportSettingsBody,
    TicketCreate,
    TicketRead,
    TicketUpdate,
)

TICKETS = table_of(Ticket)
COMMENTS = table_of(Comment)
RATINGS = table_of(Rating)
AGENTS = table_of(Agent)
SETTINGS = table_of(SupportSettings)

# Where each status may go (`resolved -> open` is a reopen). `closed` is final.
TRANSITIONS: dict[str, frozenset[str]] = {
    "new": frozenset({"open", "pending", "resolved"}),
    "open": frozenset({"pending", "resolved"}),
    "pending": frozenset({"open", "resolved"}),
    "resolved": frozenset({"open", "closed"}),
    "closed": frozenset(),
}
UNRESOLVED = ("new", "open", "pending")


def ticket_read(ticket: Ticket | sa.Row[Any], rating: Rating | RatingRead | None = None) -> TicketRead:
    """The read model of a ticket, or of a row of the tickets table (lists build no ORM object:
    `Ticket.model_construct` fails in a process whose mappers are not configured yet)."""
    return TicketRead(
        id=ticket.id,
        member_id=ticket.member_id,
        community_id=ticket.community_id,
        subject=ticket.subject,
        body=ticket.body,
        category=ticket.category,  # type: ignore[arg-type]
        priority=ticket.priority,  # type: ignore[arg-type]
        status=ticket.status,  # type: ignore[arg-type]
        tags=list(ticket.tags),
        assignee_id=ticket.assignee_id,
        created_at=ticket.created_at,
        updated_at=ticket.updated_at,
        first_response_at=ticket.first_response_at,
        resolved_at=ticket.resolved_at,
        closed_at=ticket.closed_at,
        sla=SlaRead(
            first_response_due_at=ticket.first_response_due_at,
            resolution_due_at=ticket.resolution_due_at,
            breached=ticket.breached,
        ),
        satisfaction=RatingRead(rating=rating.rating, comment=rating.comment, created_at=rating.created_at)
        if rating
        else None,
        sanction_id=ticket.sanction_id,
    )


def comment_read(comment: Comment) -> CommentRead:
    return CommentRead(
        id=comment.id,
        ticket_id=comment.ticket_id,
        author_kind=comment.author_kind,  # type: ignore[arg-type]
        author_id=comment.author_id,
        internal=comment.internal,
        body=comment.body,
        created_at=comment.created_at,
    )


# --- support settings and agents -------------------------------------------------------


async def get_settings(session: AsyncSession) -> SupportSettingsBody:
    row = await session.get(SupportSettings, 1)
    if row is None:
        return SupportSettingsBody()
    return SupportSettingsBody(reopen_window_days=row.reopen_window_days, assignment=row.assignment)  # type: ignore[arg-type]


async def put_settings(session: AsyncSession, body: SupportSettingsBody, now: datetime) -> SupportSettingsBody:
    insert = postgresql.insert(SETTINGS)
    await session.execute(
        insert.on_conflict_do_update(
            index_elements=[SETTINGS.c.id],
            set_={
                "reopen_window_days": insert.excluded.reopen_window_days,
                "assignment": insert.excluded.assignment,
                "updated_at": now,
            },
        ),
        [{"id": 1, **body.model_dump(), "updated_at": now}],
    )
    return body


async def remember_agent(session: AsyncSession, agent_id: uuid.UUID, now: datetime) -> None:
    """Put a staff member with the agent role into the rotation (once; disabled stays disabled)."""
    await session.execute(
        postgresql.insert(AGENTS)
        .values(id=agent_id, disabled=False, first_seen_at=now)
        .on_conflict_do_nothing(index_elements=[AGENTS.c.id])
    )


async def list_agents(session: AsyncSession) -> AgentPage:
    rows = await session.execute(sa.select(AGENTS).order_by(AGENTS.c.first_seen_at, AGENTS.c.id))
    return AgentPage(items=[AgentRead.model_validate(row, from_attributes=True) for row in rows])


async def set_agent_disabled(session: AsyncSession, agent_id: uuid.UUID, disabled: bool, now: datetime) -> AgentRead:
    insert = postgresql.insert(AGENTS)
    row = (
        await session.execute(
            insert.values(id=agent_id, disabled=disabled, first_seen_at=now)
            .on_conflict_do_update(index_elements=[AGENTS.c.id], set_={"disabled": disabled})
            .returning(AGENTS)
        )
    ).one()
    return AgentRead.model_validate(row, from_attributes=True)


# --- tickets ---------------------------------------------------------------------------


async def create_ticket(
    db: Database, outbox: Outbox, configs: SupportConfigCache, body: TicketCreate, caller: Identity, now: datetime
) -> bytes:
    """File the ticket with due times under the SLA policy in force, and its event; the answer
    is the `TicketRead` as JSON. With the config cached and unchanged (and no appeal's
    sanction to check): one statement that is its own transaction, no session. Otherwise in
    a transaction: the sanction checked, the config read if it changed, the same statement."""
    owner = policy.owner_for_new_ticket(caller, body.member_id)
    values: dict[str, Any] = {
        "id": new_id(),
        "member_id": owner,
        "community_id": body.community_id,
        "subject": body.subject,
        "body": body.body,
        "category": body.category,
        "priority": body.priority,
        "status": "new",
        "tags": body.tags,
        "assignee_id": body.assignee_id if policy.is_agent(caller) else None,
        "created_by": caller.key,
        "created_at": now,
        "updated_at": now,
        "breached": False,
        "sanction_id": body.sanction_id,
    }
    config = configs.cached(body.community_id)
    if config is not None and body.sanction_id is None:
        if await _file(db, outbox, values, config, guarded=True):
            db.wake(OUTBOX_CHANNEL)
            return _ticket_json(values)
        configs.forget(config.version)
        config = None
    async with transaction(db) as session:
        await appeals.check_appeal(session, body.category, body.sanction_id, owner)
        if config is None or not await _file(session, outbox, values, config, guarded=True):
            if config is not None:
                configs.forget(config.version)
            config = await configs.read(session, body.community_id)
            await _file(session, outbox, values, config, guarded=False)
        wake_after_commit(session, OUTBOX_CHANNEL)
    return _ticket_json(values)


async def _file(
    db_or_session: Database | AsyncSession,
    outbox: Outbox,
    values: dict[str, Any],
    config: SupportConfig,
    *,
    guarded: bool,
) -> bool:
    """The ticket under this config, with its event, in one statement (in the session's
    transaction, or as a transaction of its own); guarded: only if the config is still
    current (False: nothing was written). Sets the due times and the assignee."""
    now = values["created_at"]
    _due(values, config, now)
    round_robin = values["assignee_id"] is None and config.assignment == "round_robin"
    event = TicketCreated(
        ticket_id=values["id"],
        member_id=values["member_id"],
        community_id=values["community_id"],
        category=values["category"],
        priority=values["priority"],
        status="new",
        assignee_id=values["assignee_id"],  # round robin: the statement writes the agent it chose
        first_response_due_at=values["first_response_due_at"],
        resolution_due_at=values["resolution_due_at"],
        created_at=now,
    )
    sql, args = repository.filing_statement(
        values,
        event_args(outbox, EventDraft(event, occurred_at=now)),
        config_version=config.version if guarded else None,
        round_robin=round_robin,
    )
    row: Any  # an asyncpg Record or a RowMapping: read by column name
    if isinstance(db_or_session, Database):
        async with db_or_session.atomic() as connection:  # the statement is its transaction
            row = await connection.fetchrow(sql, *args)
    else:
        row = (await (await db_or_session.connection()).exec_driver_sql(sql, args)).mappings().first()
    if row is None:
        return False
    assignee_id = row["assignee_id"]
    if round_robin and assignee_id is not None:  # asyncpg's UUID: a subclass orjson does not take
        values["assignee_id"] = uuid.UUID(bytes=assignee_id.bytes)
    return True


def _ticket_json(values: dict[str, Any]) -> bytes:
    """A new ticket's `TicketRead` as JSON, written straight from its values (as `page_json`
    writes a list), not built and validated again as a model."""
    return orjson.dumps(
        {
            **{name: values[name] for name in _READ_FIELDS},
            "first_response_at": None,
            "resolved_at": None,
            "closed_at": None,
            "sla": {
                "first_response_due_at": values["first_response_due_at"],
                "resolution_due_at": values["resolution_due_at"],
                "breached": False,
            },
            "satisfaction": None,
            "sanction_id": values["sanction_id"],
        },
        option=orjson.OPT_UTC_Z,
    )


_READ_FIELDS = (
    "id", "member_id", "community_id", "subject", "body", "category", "priority", "status", "tags", "assignee_id",
    "created_at", "updated_at",
)  # fmt: skip


def _due(values: dict[str, Any], config: SupportConfig, now: datetime) -> dict[str, Any]:
    """The ticket's values with its due times under this config (both clocks start now)."""
    policy_item = config.policy(values["priority"])
    calendar = config.calendars.get(values["community_id"]) if values["community_id"] is not None else None
    due = sla.due_times_with(policy_item, calendar, first_response_from=now, resolution_from=now)
    values["business_hours_only"] = due.business_hours_only
    values["first_response_due_at"] = due.first_response_due_at
    values["resolution_due_at"] = due.resolution_due_at
    return values


async def load_ticket(session: AsyncSession, ticket_id: uuid.UUID, caller: Identity, *, lock: bool = False) -> Ticket:
    """The ticket if the caller may see it; a 404 otherwise (members: anyone else's too)."""
    ticket = await session.get(Ticket, ticket_id, with_for_update=lock)
    if ticket is None:
        raise TicketNotFound("No such ticket.")
    policy.ensure_can_see(caller, ticket.member_id)
    return ticket


async def read_ticket(session: AsyncSession, ticket: Ticket) -> TicketRead:
    return ticket_read(ticket, await session.get(Rating, ticket.id))


async def list_tickets(db: Database, caller: Identity, page: PageParams, filters: TicketFilters) -> bytes:
    """A `TicketPage` as JSON: newest first, one statement per page whatever the page (keyset
    on created_at, id), as committed (a GET: the read pool). A member sees their own tickets
    only. The rows are in `TicketRead`'s shape already (`_listed`), so the page is written
    straight from them (`page_json`), not validated and serialised per ticket."""
    if caller.kind == "member":
        if filters.member_id is not None and filters.member_id != caller.member_id:
            return page_json([], None)
        filters = replace(filters, member_id=caller.member_id)
    else:
        policy.ensure_agent(caller)
    if filters.tag is not None:
        filters = replace(filters, tag=filters.tag.strip().lower())
    after = keyset_values(repository.PAGE_KEYS, page.cursor)
    rows = await repository.ticket_page(db, filters, after, page.limit + 1)
    items, cursor = paginate_rows(rows, page.limit, lambda r: (r["created_at"], r["id"]))
    return page_json([_listed(row) for row in items], cursor)


def _listed(row: asyncpg.Record) -> dict[str, Any]:
    """A listed row in the shape of `TicketRead` (the page validates them all in one call)."""
    item = dict(row)
    item["sla"] = {
        "first_response_due_at": item.pop("first_response_due_at"),
        "resolution_due_at": item.pop("resolution_due_at"),
        "breached": item.pop("breached"),
    }
    rating, comment, rated_at = item.pop("csat_rating"), item.pop("csat_comment"), item.pop("csat_at")
    item["satisfaction"] = {"rating": rating, "comment": comment, "created_at": rated_at} if rating else None
    return item


async def _recompute_due(session: AsyncSession, ticket: Ticket, *, resolution_from: datetime) -> None:
    due = await sla.due_times(
        session,
        ticket.priority,
        ticket.community_id,
        first_response_from=ticket.created_at,
        resolution_from=resolution_from,
    )
    ticket.first_response_due_at = due.first_response_due_at
    ticket.resolution_due_at = due.resolution_due_at
    ticket.business_hours_only = due.business_hours_only


async def _minutes(session: AsyncSession, ticket: Ticket, start: datetime, end: datetime) -> int:
    clock = await sla.clock_for(session, ticket.community_id, ticket.business_hours_only)
    return clock.minutes_between(start, end)


async def resolve_ticket(
    session: AsyncSession, ticket: Ticket, caller: Identity, now: datetime, appeal: str | None = None
) -> None:
    """Resolve the ticket; an appeal's decision (grant or deny) is taken with its resolution, once."""
    if appeal is not None and ticket.status == "resolved":
        raise InvalidTransition(
            "This ticket is resolved already; reopen it to decide the appeal again.",
            status_from="resolved",
            status_to="resolved",
        )
    await change_status(session, ticket, "resolved", caller, now)
    await appeals.decide(session, ticket.sanction_id, appeal, caller.key, now)


async def change_status(session: AsyncSession, ticket: Ticket, to: str, caller: Identity, now: datetime) -> None:
    """Move the ticket along the status machine (409 for a move it does not allow)."""
    before = ticket.status
    if to == before:
        return
    if to not in TRANSITIONS[before]:
        detail = "A closed ticket is final." if before == "closed" else f"A ticket cannot go from {before} to {to}."
        raise InvalidTransition(detail, status_from=before, status_to=to)
    if before == "resolved" and to == "open":
        await _reopen(session, ticket, caller, now)
    ticket.status = to
    ticket.updated_at = now
    if to == "resolved":
        ticket.resolved_at = now
        ticket.resolution_minutes = await _minutes(session, ticket, ticket.created_at, now)
        await surveys.enqueue(session, ticket, now)
    elif to == "closed":
        ticket.closed_at = now
    await emit(
        session,
        TicketStatusChanged(
            ticket_id=ticket.id,
            member_id=ticket.member_id,
            status=to,
            previous_status=before,
            changed_at=now,  # type: ignore[arg-type]
        ),
    )


async def _reopen(session: AsyncSession, ticket: Ticket, caller: Identity, now: datetime) -> None:
    if not policy.is_agent(caller):
        window = (await get_settings(session)).reopen_window_days
        if ticket.resolved_at is None or now > ticket.resolved_at + timedelta(days=window):
            raise ReopenWindowPassed(f"A ticket may be reopened within {window} days of its resolution.")
    ticket.resolved_at = None
    ticket.reopened_at = now
    await _recompute_due(session, ticket, resolution_from=now)


async def reopen_ticket(session: AsyncSession, ticket: Ticket, caller: Identity, now: datetime) -> None:
    if ticket.status != "resolved":
        raise InvalidTransition(
            "Only a resolved ticket can be reopened." if ticket.status != "closed" else "A closed ticket is final.",
            status_from=ticket.status,
            status_to="open",
        )
    await change_status(session, ticket, "open", caller, now)


async def update_ticket(
    session: AsyncSession, ticket: Ticket, body: TicketUpdate, caller: Identity, now: datetime
) -> None:
    fields = body.model_fields_set
    if "priority" in fields and body.priority is not None and body.priority != ticket.priority:
        ticket.priority = body.priority
        # A new priority restarts neither clock: both targets count from when they started.
        await _recompute_due(session, ticket, resolution_from=ticket.reopened_at or ticket.created_at)
    if "assignee_id" in fields:
        ticket.assignee_id = body.assignee_id
    if "tags" in fields and body.tags is not None:
        ticket.tags = body.tags
    ticket.updated_at = now
    if "status" in fields and body.status is not None:
        await change_status(session, ticket, body.status, caller, now)


# --- comments --------------------------------------------------------------------------


async def add_comment(
    session: AsyncSession, ticket: Ticket, body: CommentCreate, caller: Identity, now: datetime
) -> CommentRead:
    kind, author = policy.author_of(caller)
    if body.internal and kind != "agent":
        raise Unprocessable(
            "Members write public comments only.",
            errors=[{"loc": ["body", "internal"], "msg": "only agents write internal notes"}],
        )
    if ticket.status == "closed":
        raise InvalidTransition("A closed ticket takes no more comments.", status_from="closed", status_to="closed")
    comment = Comment(
        id=new_id(),
        ticket_id=ticket.id,
        author_kind=kind,
        author_id=author,
        internal=body.internal,
        body=body.body,
        created_at=now,
    )
    session.add(comment)
    ticket.updated_at = now
    if body.internal:
        return comment_read(comment)  # internal notes are never announced
    if kind == "agent" and ticket.first_response_at is None:
        ticket.first_response_at = now
        ticket.first_response_minutes = await _minutes(session, ticket, ticket.created_at, now)
    await emit(
        session,
        TicketCommented(
            ticket_id=ticket.id,
            member_id=ticket.member_id,
            comment_id=comment.id,
            author_kind=kind,
            commented_at=now,  # type: ignore[arg-type]
        ),
    )
    # An agent's reply opens a new ticket; the owner's reply brings a pending one back.
    if kind == "agent" and ticket.status == "new":
        await change_status(session, ticket, "open", caller, now)
    elif kind == "member" and ticket.status == "pending":
        await change_status(session, ticket, "open", caller, now)
    return comment_read(comment)


async def list_comments(session: AsyncSession, ticket: Ticket, caller: Identity, page: PageParams) -> CommentPage:
    """The thread, oldest first; members never see internal notes."""
    c = COMMENTS
    filters: list[sa.ColumnElement[bool]] = [c.c.ticket_id == ticket.id]
    if not policy.is_agent(caller):
        filters.append(c.c.internal.is_(False))
    after = keyset_after((c.c.created_at, c.c.id), page.cursor)
    if after is not None:
        filters.append(after)
    rows = (
        (
            await session.execute(
                sa.select(Comment)
                .where(*filters)
                .order_by(col(Comment.created_at), col(Comment.id))
                .limit(page.limit + 1)
            )
        )
        .scalars()
        .all()
    )
    items, cursor = paginate_rows(rows, page.limit, lambda r: (r.created_at, r.id))
    return CommentPage(items=[comment_read(item) for item in items], next_cursor=cursor)


# --- CSAT ------------------------------------------------------------------------------


async def rate_ticket(
    session: AsyncSession, ticket: Ticket, body: RatingCreate, caller: Identity, now: datetime
) -> RatingRead:
    if not caller.is_member(ticket.member_id):
        if caller.kind == "member":
            raise TicketNotFound("No such ticket.")
        raise Forbidden("Only the ticket's owner rates it.")
    if ticket.status not in ("resolved", "closed"):
        raise TicketNotResolved("A ticket is rated once it is resolved.")
    created = await session.scalar(
        postgresql.insert(RATINGS)
        .values(
            ticket_id=ticket.id, member_id=ticket.member_id, rating=body.rating, comment=body.comment, created_at=now
        )
        .on_conflict_do_nothing(index_elements=[RATINGS.c.ticket_id])
        .returning(RATINGS.c.ticket_id)
    )
    if created is None:
        raise AlreadyRated("This ticket was already rated.")
    await emit(
        session, CsatReceived(ticket_id=ticket.id, member_id=ticket.member_id, rating=body.rating, received_at=now)
    )
    return RatingRead(rating=body.rating, comment=body.comment, created_at=now)
