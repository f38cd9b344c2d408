"""A member's feedback data, for the export the gateway composes."""

from __future__ import annotations

import uuid

from pydantic import BaseModel

from services.feedback.moderation.privacy import ModerationExport
from services.feedback.suggestions.schemas import SuggestionRead
from services.feedback.tickets.schemas import CommentRead, TicketRead


class VoteExport(BaseModel):
    suggestion_id: uuid.UUID
    weight: int


class MemberExport(BaseModel):
    """Everything the member wrote or filed: tickets with their public thread, ratings, suggestions,
    votes, the reports they filed and their moderation standing."""

    member_id: uuid.UUID
    tickets: list[TicketRead]
    comments: list[CommentRead]
    suggestions: list[SuggestionRead]
    votes: list[VoteExport]
    moderation: ModerationExport
