"""Contracts of the feedback service: tickets, SLA, CSAT and suggestions.

Emitted by the feedback service (API.md). Payloads carry ids, states and times, never a
ticket's or comment's text, and internal notes are never announced at all.
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import Field

from services.common.contracts.base import EventModel, UtcDatetime, with_example
from services.common.contracts.members import COMMUNITY_ID, MEMBER_ID

TicketStatus = Literal["new", "open", "pending", "resolved", "closed"]
TicketPriority = Literal["low", "normal", "high", "urgent"]
TicketCategory = Literal["question", "bug", "suggestion", "complaint", "appeal"]
SuggestionStatus = Literal["open", "planned", "in_progress", "done", "declined"]

TICKET_ID = "1f2e3d4c-5b6a-4978-8a9b-0c1d2e3f4a5b"
SUGGESTION_ID = "2a3b4c5d-6e7f-4a8b-9c0d-1e2f3a4b5c6e"


class TicketCreated(EventModel):
    """A ticket was filed; its SLA clock started."""

    event_type = "feedback.ticket_created"
    model_config = with_example(
        ticket_id=TICKET_ID,
        member_id=MEMBER_ID,
        community_id=COMMUNITY_ID,
        category="complaint",
        priority="high",
        status="new",
        assignee_id="5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
        first_response_due_at="2026-11-21T09:00:00Z",
        resolution_due_at="2026-11-22T08:00:00Z",
        created_at="2026-11-21T08:00:00Z",
    )

    ticket_id: uuid.UUID
    member_id: uuid.UUID
    community_id: uuid.UUID | None
    category: TicketCategory
    priority: TicketPriority
    status: Literal["new"]
    assignee_id: uuid.UUID | None = Field(default=None, description="The agent assigned at filing, if any")
    first_response_due_at: UtcDatetime
    resolution_due_at: UtcDatetime
    created_at: UtcDatetime


class TicketStatusChanged(EventModel):
    """A ticket changed status."""

    event_type = "feedback.ticket_status_changed"
    model_config = with_example(
        ticket_id=TICKET_ID,
        member_id=MEMBER_ID,
        status="resolved",
        previous_status="open",
        changed_at="2026-11-21T10:00:00Z",
    )

    ticket_id: uuid.UUID
    member_id: uuid.UUID
    status: TicketStatus
    previous_status: TicketStatus
    changed_at: UtcDatetime


class TicketCommented(EventModel):
    """A public comment was added to a ticket (internal notes are never announced)."""

    event_type = "feedback.ticket_commented"
    model_config = with_example(
        ticket_id=TICKET_ID,
        member_id=MEMBER_ID,
        comment_id="3b4c5d6e-7f8a-4b9c-8d0e-1f2a3b4c5d6f",
        author_kind="agent",
        commented_at="2026-11-21T08:40:00Z",
    )

    ticket_id: uuid.UUID
    member_id: uuid.UUID = Field(description="The ticket's owner")
    comment_id: uuid.UUID
    author_kind: Literal["member", "agent"]
    commented_at: UtcDatetime


class SlaBreached(EventModel):
    """A ticket passed an SLA due time without the response or resolution (once per due time)."""

    event_type = "feedback.sla_breached"
    model_config = with_example(
        ticket_id=TICKET_ID,
        member_id=MEMBER_ID,
        priority="high",
        target="first_response",
        due_at="2026-11-21T09:00:00Z",
        breached_at="2026-11-21T09:00:05Z",
    )

    ticket_id: uuid.UUID
    member_id: uuid.UUID
    priority: TicketPriority
    target: Literal["first_response", "resolution"]
    due_at: UtcDatetime
    breached_at: UtcDatetime


class CsatRequested(EventModel):
    """A resolved ticket's owner is asked to rate the support they got."""

    event_type = "feedback.csat_requested"
    model_config = with_example(
        ticket_id=TICKET_ID, member_id=MEMBER_ID, community_id=COMMUNITY_ID, requested_at="2026-11-21T10:00:00Z"
    )

    ticket_id: uuid.UUID
    member_id: uuid.UUID
    community_id: uuid.UUID | None
    requested_at: UtcDatetime


class CsatReceived(EventModel):
    """A member rated the support they got."""

    event_type = "feedback.csat_received"
    model_config = with_example(ticket_id=TICKET_ID, member_id=MEMBER_ID, rating=5, received_at="2026-11-21T11:00:00Z")

    ticket_id: uuid.UUID
    member_id: uuid.UUID
    rating: int = Field(ge=1, le=5)
    received_at: UtcDatetime


class SuggestionCreated(EventModel):
    """A member made a suggestion."""

    event_type = "feedback.suggestion_created"
    model_config = with_example(
        suggestion_id=SUGGESTION_ID,
        community_id=COMMUNITY_ID,
        member_id=MEMBER_ID,
        title="A weekly quiz night",
        created_at="2026-11-21T08:00:00Z",
    )

    suggestion_id: uuid.UUID
    community_id: uuid.UUID
    member_id: uuid.UUID = Field(description="The author")
    title: str
    created_at: UtcDatetime


class SuggestionStatusChanged(EventModel):
    """An operator moved a suggestion to another status."""

    event_type = "feedback.suggestion_status_changed"
    model_config = with_example(
        suggestion_id=SUGGESTION_ID,
        community_id=COMMUNITY_ID,
        member_id=MEMBER_ID,
        status="planned",
        previous_status="open",
        response="We will try it in December.",
        changed_at="2026-11-25T08:00:00Z",
    )

    suggestion_id: uuid.UUID
    community_id: uuid.UUID
    member_id: uuid.UUID = Field(description="The author")
    status: SuggestionStatus
    previous_status: SuggestionStatus
    response: str | None = Field(default=None, description="The operator's public response, if any")
    changed_at: UtcDatetime


class SuggestionCompleted(EventModel):
    """A suggestion was done: rewards pays its author, partners tell everyone who voted."""

    event_type = "feedback.suggestion_completed"
    model_config = with_example(
        suggestion_id=SUGGESTION_ID,
        community_id=COMMUNITY_ID,
        member_id=MEMBER_ID,
        title="A weekly quiz night",
        voter_ids=["4d5e6f7a-8b9c-4d0e-9f1a-2b3c4d5e6f7a"],
        completed_at="2026-12-05T08:00:00Z",
    )

    suggestion_id: uuid.UUID
    community_id: uuid.UUID
    member_id: uuid.UUID = Field(description="The author")
    title: str
    voter_ids: list[uuid.UUID] = Field(description="The members who voted for it")
    completed_at: UtcDatetime
