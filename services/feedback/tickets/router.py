"""Tickets, their threads and ratings, support settings and the agent rotation."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response

from services.common.contracts.feedback import TicketCategory, TicketPriority, TicketStatus
from services.common.db import Database, DatabaseDep, SessionDep, on_rollback, utcnow
from services.common.identity import Caller, Identity, get_caller, require
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.feedback.tickets import policy, service
from services.feedback.tickets.models import Ticket
from services.feedback.tickets.repository import TicketFilters
from services.feedback.tickets.schemas import (
    AgentPage,
    AgentRead,
    AgentUpdate,
    CommentCreate,
    CommentPage,
    CommentRead,
    RatingCreate,
    RatingRead,
    SupportSettingsBody,
    TicketCreate,
    TicketPage,
    TicketRead,
    TicketResolve,
    TicketUpdate,
)
from services.feedback.tickets.surveys import Surveys

router = APIRouter(tags=["tickets"])

SettingsEditor = Annotated[Identity, Depends(require("operator"))]
Admin = Annotated[Identity, Depends(require())]
SupportStaff = Annotated[Identity, Depends(require("agent", "operator"))]


def _new_agent(request: Request, caller: Identity) -> uuid.UUID | None:
    """The caller's id if they are an agent feedback has not put in the rotation yet."""
    if caller.kind != "staff" or "agent" not in caller.roles or caller.id in request.app.state.known_agents:
        return None
    try:
        return uuid.UUID(caller.id)
    except ValueError:
        return None


async def ticket_caller(request: Request, caller: Caller, session: SessionDep) -> Identity:
    """The caller; a staff member with the agent role joins the round-robin rotation on first sight.

    Feedback never reads the gateway's staff table: agents are learned from the internal
    token, and an admin disables one here (`PATCH /v1/support-agents/{id}`)."""
    agent_id = _new_agent(request, caller)
    if agent_id is not None:
        known: set[str] = request.app.state.known_agents
        await service.remember_agent(session, agent_id, utcnow())
        known.add(caller.id)

        async def forget() -> None:  # the insert was rolled back with the request: ask again
            known.discard(caller.id)

        on_rollback(session, forget)
    return caller


async def sessionless_caller(request: Request) -> Identity:
    """`ticket_caller` for a route that opens no request session (the list reads on the read
    pool, filing is one statement of its own): a new agent joins the rotation in a transaction
    of its own, the rare time there is one. (The caller read here, not through `Caller`: one
    level of dependency solving less on the hottest routes.)"""
    caller = await get_caller(request)
    agent_id = _new_agent(request, caller)
    if agent_id is not None:
        db: Database = request.app.state.db
        async with db.session() as session:
            await service.remember_agent(session, agent_id, utcnow())
            await db.commit(session)
        request.app.state.known_agents.add(caller.id)
    return caller


TicketCaller = Annotated[Identity, Depends(ticket_caller)]
SessionlessCaller = Annotated[Identity, Depends(sessionless_caller)]


async def _ticket(ticket_id: uuid.UUID, session: SessionDep, caller: TicketCaller) -> Ticket:
    return await service.load_ticket(session, ticket_id, caller, lock=True)


async def _readable_ticket(ticket_id: uuid.UUID, session: SessionDep, caller: TicketCaller) -> Ticket:
    return await service.load_ticket(session, ticket_id, caller)


TicketDep = Annotated[Ticket, Depends(_ticket)]  # locked: for changes
ReadableTicketDep = Annotated[Ticket, Depends(_readable_ticket)]


def _survey_after_commit(request: Request, background: BackgroundTasks, before: str, ticket: Ticket) -> None:
    """A ticket that became resolved is asked its survey once this request has committed (the
    owed survey was written with the resolution; the survey job retries it if this attempt
    does not happen or does not succeed, see `tickets/surveys.py`)."""
    if before != "resolved" and ticket.status == "resolved":
        surveys: Surveys = request.app.state.surveys
        background.add_task(surveys.request_now, ticket.id)


@router.post("/v1/tickets", status_code=201, response_model=TicketRead, responses=problem_responses(401, 403, 422))
async def create_ticket(body: TicketCreate, request: Request, caller: SessionlessCaller) -> Response:
    """File a ticket (a member for themself, an agent or partner for `member_id`); its SLA clock starts."""
    # The database, outbox and config cache straight from the app: no dependency to solve for each.
    state = request.app.state
    answer = await service.create_ticket(state.db, state.outbox, state.support_configs, body, caller, utcnow())
    return Response(answer, status_code=201, media_type="application/json")


@router.get("/v1/tickets", response_model=TicketPage, responses=problem_responses(401, 403, 422))
async def list_tickets(
    page: PageDep,
    db: DatabaseDep,
    caller: SessionlessCaller,
    status: Annotated[
        list[TicketStatus] | None, Query(description="One or more statuses (repeat the parameter)")
    ] = None,
    priority: TicketPriority | None = None,
    category: TicketCategory | None = None,
    assignee_id: uuid.UUID | None = None,
    community_id: uuid.UUID | None = None,
    member_id: uuid.UUID | None = None,
    breached: bool | None = None,
    tag: Annotated[str | None, Query(max_length=64)] = None,
) -> Response:
    """Tickets, newest first: every ticket for agents, their own for a member."""
    filters = TicketFilters(
        statuses=tuple(status or ()),
        priority=priority,
        category=category,
        assignee_id=assignee_id,
        community_id=community_id,
        member_id=member_id,
        breached=breached,
        tag=tag,
    )
    return Response(await service.list_tickets(db, caller, page, filters), media_type="application/json")


@router.get("/v1/tickets/{ticket_id}", responses=problem_responses(401, 403, 404))
async def get_ticket(ticket: ReadableTicketDep, session: SessionDep) -> TicketRead:
    """One ticket with its SLA state (a member sees only their own)."""
    return await service.read_ticket(session, ticket)


@router.patch("/v1/tickets/{ticket_id}", responses=problem_responses(401, 403, 404, 409, 422))
async def update_ticket(
    body: TicketUpdate,
    ticket: TicketDep,
    session: SessionDep,
    caller: TicketCaller,
    request: Request,
    background: BackgroundTasks,
) -> TicketRead:
    """Change status, priority (due times move), assignee or tags (agents)."""
    policy.ensure_agent(caller, ticket.member_id)
    before = ticket.status
    await service.update_ticket(session, ticket, body, caller, utcnow())
    _survey_after_commit(request, background, before, ticket)
    return await service.read_ticket(session, ticket)


@router.post("/v1/tickets/{ticket_id}/resolve", responses=problem_responses(401, 403, 404, 409, 422))
async def resolve_ticket(
    ticket: TicketDep,
    session: SessionDep,
    caller: TicketCaller,
    request: Request,
    background: BackgroundTasks,
    body: TicketResolve | None = None,
) -> TicketRead:
    """Resolve the ticket (agents); an appeal granted lifts its sanction. The owner is asked for a rating."""
    policy.ensure_agent(caller, ticket.member_id)
    before = ticket.status
    now = utcnow()
    await service.resolve_ticket(session, ticket, caller, now, body.appeal if body else None)
    _survey_after_commit(request, background, before, ticket)
    return await service.read_ticket(session, ticket)


@router.post("/v1/tickets/{ticket_id}/reopen", responses=problem_responses(401, 403, 404, 409))
async def reopen_ticket(ticket: TicketDep, session: SessionDep, caller: TicketCaller) -> TicketRead:
    """Reopen a resolved ticket: agents any time, the owner within the reopen window."""
    await service.reopen_ticket(session, ticket, caller, utcnow())
    return await service.read_ticket(session, ticket)


@router.post("/v1/tickets/{ticket_id}/close", responses=problem_responses(401, 403, 404, 409))
async def close_ticket(ticket: TicketDep, session: SessionDep, caller: TicketCaller) -> TicketRead:
    """Close a resolved ticket for good (agents)."""
    policy.ensure_agent(caller, ticket.member_id)
    await service.change_status(session, ticket, "closed", caller, utcnow())
    return await service.read_ticket(session, ticket)


@router.post("/v1/tickets/{ticket_id}/comments", status_code=201, responses=problem_responses(401, 403, 404, 409, 422))
async def create_comment(
    body: CommentCreate, ticket: TicketDep, session: SessionDep, caller: TicketCaller
) -> CommentRead:
    """Reply on the thread (the owner: public only); an agent's first public reply is the first response."""
    return await service.add_comment(session, ticket, body, caller, utcnow())


@router.get("/v1/tickets/{ticket_id}/comments", responses=problem_responses(401, 403, 404, 422))
async def list_comments(
    ticket: ReadableTicketDep, page: PageDep, session: SessionDep, caller: TicketCaller
) -> CommentPage:
    """The thread, oldest first (members never see internal notes)."""
    return await service.list_comments(session, ticket, caller, page)


@router.post(
    "/v1/tickets/{ticket_id}/satisfaction", status_code=201, responses=problem_responses(401, 403, 404, 409, 422)
)
async def rate_ticket(body: RatingCreate, ticket: TicketDep, session: SessionDep, caller: TicketCaller) -> RatingRead:
    """The owner rates the support they got, 1 to 5, once, after resolution."""
    return await service.rate_ticket(session, ticket, body, caller, utcnow())


@router.get("/v1/support-settings", responses=problem_responses(401, 403))
async def get_support_settings(session: SessionDep, _caller: SupportStaff) -> SupportSettingsBody:
    """The reopen window and the assignment policy."""
    return await service.get_settings(session)


@router.put("/v1/support-settings", responses=problem_responses(401, 403, 422))
async def put_support_settings(
    body: SupportSettingsBody, session: SessionDep, _caller: SettingsEditor
) -> SupportSettingsBody:
    """Set the reopen window and the assignment policy (operators)."""
    return await service.put_settings(session, body, utcnow())


@router.get("/v1/support-agents", responses=problem_responses(401, 403))
async def list_support_agents(session: SessionDep, _caller: SupportStaff) -> AgentPage:
    """The agents in the round-robin rotation (learned from their requests)."""
    return await service.list_agents(session)


@router.patch("/v1/support-agents/{agent_id}", responses=problem_responses(401, 403, 422))
async def update_support_agent(
    agent_id: uuid.UUID, body: AgentUpdate, session: SessionDep, _caller: Admin
) -> AgentRead:
    """Take an agent out of the rotation, or put them back (admins)."""
    return await service.set_agent_disabled(session, agent_id, body.disabled, utcnow())
