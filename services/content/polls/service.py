"""Voting: one vote per member and poll (a unique key; a repeat changes nothing)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.content import PollVoted
from services.common.db import new_id, table_of
from services.common.events import emit
from services.common.problems import Forbidden, Unprocessable
from services.content.communities.service import is_member
from services.content.polls.models import PollVote
from services.content.polls.schemas import OptionResult, PollResults
from services.content.posts.service import POSTS, PostNotFound

VOTES = table_of(PollVote)


class NotACommunityMember(Forbidden):
    slug, title = "not-a-community-member", "Not a member of the post's community"


class UnknownOption(Unprocessable):
    slug, title = "unknown-option", "Not one of the poll's options"


async def published_poll(session: AsyncSession, post_id: uuid.UUID) -> Any:
    """The published poll (drafts and other kinds are not polls anyone can see: 404)."""
    row = (
        await session.execute(
            sa.select(POSTS).where(POSTS.c.id == post_id, POSTS.c.kind == "poll", POSTS.c.status == "published")
        )
    ).first()
    if row is None:
        raise PostNotFound("No such poll.")
    return row


async def ensure_member(session: AsyncSession, community_id: uuid.UUID, member_id: uuid.UUID) -> None:
    if not await is_member(session, community_id, member_id):
        raise NotACommunityMember("Only members of the post's community take part in its polls.")


async def vote(
    session: AsyncSession, post_id: uuid.UUID, member_id: uuid.UUID, option: str, now: datetime
) -> tuple[bool, Any]:
    """Record the member's vote: (False if they had voted already, their first vote standing; the poll)."""
    poll = await published_poll(session, post_id)
    await ensure_member(session, poll.community_id, member_id)
    if option not in (poll.options or []):
        raise UnknownOption(f"{option!r} is not one of the poll's options.")
    vote_id = new_id()
    inserted = await session.scalar(
        postgresql.insert(VOTES)
        .values(id=vote_id, post_id=post_id, member_id=member_id, option=option, voted_at=now)
        .on_conflict_do_nothing(index_elements=[VOTES.c.post_id, VOTES.c.member_id])
        .returning(VOTES.c.id)
    )
    if inserted is None:
        return False, poll
    await emit(
        session,
        PollVoted(
            vote_id=vote_id,
            post_id=post_id,
            community_id=poll.community_id,
            member_id=member_id,
            option=option,
            voted_at=now,
        ),
    )
    return True, poll


async def results(session: AsyncSession, poll: Any, member_id: uuid.UUID | None) -> PollResults:
    rows = await session.execute(
        sa.select(VOTES.c.option, sa.func.count()).where(VOTES.c.post_id == poll.id).group_by(VOTES.c.option)
    )
    counts: dict[str, int] = {option: int(n) for option, n in rows}
    mine = None
    if member_id is not None:
        mine = await session.scalar(
            sa.select(VOTES.c.option).where(VOTES.c.post_id == poll.id, VOTES.c.member_id == member_id)
        )
    options = [OptionResult(option=o, votes=int(counts.get(o, 0))) for o in poll.options or []]
    return PollResults(post_id=poll.id, total=sum(o.votes for o in options), options=options, my_vote=mine)
