"""Export and erasure of a member's feedback data.

Erasure pseudonymizes: the member's id on tickets, comments, ratings, suggestions and votes
becomes one random pseudonym (so agents still see one requester's thread as one person's),
and the text stays for the agents. Feedback holds no name or contact, so nothing else is
removed; the learned level is deleted. Internal notes never reach the export. Reports and
sanctions keep their counts under the same pseudonym (`moderation/privacy.py`).
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.db import new_id
from services.feedback.moderation import privacy as moderation
from services.feedback.privacy.schemas import MemberExport, VoteExport
from services.feedback.suggestions.schemas import SuggestionRead
from services.feedback.suggestions.service import LEVELS, SUGGESTIONS, VOTES
from services.feedback.tickets.models import Comment, Rating, Ticket
from services.feedback.tickets.service import COMMENTS, RATINGS, TICKETS, comment_read, ticket_read


async def export_member(session: AsyncSession, member_id: uuid.UUID) -> MemberExport:
    tickets = (
        (
            await session.execute(
                sa.select(Ticket).where(TICKETS.c.member_id == member_id).order_by(TICKETS.c.created_at)
            )
        )
        .scalars()
        .all()
    )
    ratings = {
        r.ticket_id: r
        for r in (await session.execute(sa.select(Rating).where(RATINGS.c.member_id == member_id))).scalars()
    }
    ticket_ids = [t.id for t in tickets]
    comments = (
        (
            await session.execute(
                sa.select(Comment)
                .where(
                    COMMENTS.c.internal.is_(False),
                    sa.or_(
                        COMMENTS.c.ticket_id.in_(ticket_ids),
                        sa.and_(COMMENTS.c.author_kind == "member", COMMENTS.c.author_id == str(member_id)),
                    ),
                )
                .order_by(COMMENTS.c.created_at, COMMENTS.c.id)
            )
        )
        .scalars()
        .all()
    )
    suggestions = await session.execute(
        sa.select(SUGGESTIONS).where(SUGGESTIONS.c.member_id == member_id).order_by(SUGGESTIONS.c.created_at)
    )
    votes = await session.execute(
        sa.select(VOTES.c.suggestion_id, VOTES.c.weight)
        .where(VOTES.c.member_id == member_id)
        .order_by(VOTES.c.created_at)
    )
    return MemberExport(
        member_id=member_id,
        tickets=[ticket_read(t, ratings.get(t.id)) for t in tickets],
        comments=[comment_read(c) for c in comments],
        suggestions=[SuggestionRead.model_validate(s, from_attributes=True) for s in suggestions],
        votes=[VoteExport(suggestion_id=v.suggestion_id, weight=v.weight) for v in votes],
        moderation=await moderation.export_member(session, member_id),
    )


async def erase_member(session: AsyncSession, member_id: uuid.UUID, now: datetime) -> uuid.UUID:
    """Apply `member.erased`; returns the pseudonym that replaced the member's id."""
    pseudonym = new_id()
    await session.execute(
        TICKETS.update().where(TICKETS.c.member_id == member_id).values(member_id=pseudonym, member_erased_at=now)
    )
    await session.execute(
        TICKETS.update().where(TICKETS.c.created_by == f"member:{member_id}").values(created_by=f"member:{pseudonym}")
    )
    await session.execute(
        COMMENTS.update()
        .where(COMMENTS.c.author_kind == "member", COMMENTS.c.author_id == str(member_id))
        .values(author_id=str(pseudonym))
    )
    await session.execute(RATINGS.update().where(RATINGS.c.member_id == member_id).values(member_id=pseudonym))
    await session.execute(SUGGESTIONS.update().where(SUGGESTIONS.c.member_id == member_id).values(member_id=pseudonym))
    await session.execute(VOTES.update().where(VOTES.c.member_id == member_id).values(member_id=pseudonym))
    await session.execute(LEVELS.delete().where(LEVELS.c.member_id == member_id))
    await moderation.erase_member(session, member_id, pseudonym)
    return pseudonym
