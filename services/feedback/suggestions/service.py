"""The suggestion board: posting, voting (one per member), and the operator's answers.

`votes` and `score` live on the suggestion and change with each vote in the same
statement pair, so reading a page never counts. A vote weighs 1 + the voter's level rank,
which feedback keeps from `rewards.level_changed` (no call to rewards on the hot path); a
level change re-weighs that member's votes on suggestions still open to change.

A board belongs to its community: a member posts, reads and votes only in communities they
are in now (feedback knows memberships from members' events); staff and partners see all.
"""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.feedback import SuggestionCompleted, SuggestionCreated, SuggestionStatusChanged
from services.common.contracts.rewards import LevelChanged
from services.common.db import new_id, table_of
from services.common.events import emit
from services.common.identity import Identity
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Forbidden, NotFound
from services.feedback.moderation.errors import NotInCommunity
from services.feedback.moderation.membership.service import current_communities_of, is_current_member
from services.feedback.suggestions.models import MemberLevel, Suggestion, Vote
from services.feedback.suggestions.schemas import SuggestionCreate, SuggestionPage, SuggestionRead, SuggestionUpdate

SUGGESTIONS = table_of(Suggestion)
VOTES = table_of(Vote)
LEVELS = table_of(MemberLevel)


class SuggestionNotFound(NotFound):
    slug, title = "suggestion-not-found", "Suggestion not found"


def _read(row: sa.Row[tuple[object, ...]] | Suggestion, voted: bool | None = None) -> SuggestionRead:
    return SuggestionRead.model_validate(row, from_attributes=True).model_copy(update={"voted": voted})


async def create_suggestion(
    session: AsyncSession, body: SuggestionCreate, caller: Identity, now: datetime
) -> SuggestionRead:
    if caller.kind != "member" or caller.member_id is None:
        raise Forbidden("Members make suggestions.")
    if not await is_current_member(session, body.community_id, caller.member_id):
        raise NotInCommunity("Only members of the community post on its board.")
    suggestion = Suggestion(
        id=new_id(),
        community_id=body.community_id,
        member_id=caller.member_id,
        title=body.title,
        body=body.body,
        status="open",
        created_at=now,
        updated_at=now,
    )
    session.add(suggestion)
    await emit(
        session,
        SuggestionCreated(
            suggestion_id=suggestion.id,
            community_id=suggestion.community_id,
            member_id=suggestion.member_id,
            title=suggestion.title,
            created_at=now,
        ),
    )
    return _read(suggestion, voted=False)


def _voted_column(caller: Identity) -> sa.ColumnElement[bool] | None:
    if caller.kind != "member" or caller.member_id is None:
        return None
    return (
        sa.exists()
        .where(VOTES.c.suggestion_id == SUGGESTIONS.c.id, VOTES.c.member_id == caller.member_id)
        .label("voted")
    )


async def get_suggestion(session: AsyncSession, suggestion_id: uuid.UUID, caller: Identity) -> SuggestionRead:
    """The suggestion as `caller` sees it; a member outside its community gets a 404."""
    read = await _suggestion_for(session, suggestion_id, caller)
    if read is None or (
        caller.member_id is not None
        and caller.kind == "member"
        and not await is_current_member(session, read.community_id, caller.member_id)
    ):
        raise SuggestionNotFound("No such suggestion.")  # another community's board: not revealed
    return read


async def _suggestion_for(session: AsyncSession, suggestion_id: uuid.UUID, caller: Identity) -> SuggestionRead | None:
    """The row with the caller's own vote, no access check (the caller's was made already)."""
    voted = _voted_column(caller)
    columns = [SUGGESTIONS, voted] if voted is not None else [SUGGESTIONS]
    row = (await session.execute(sa.select(*columns).where(SUGGESTIONS.c.id == suggestion_id))).first()
    return None if row is None else _read(row, row.voted if voted is not None else None)


async def list_suggestions(
    session: AsyncSession,
    caller: Identity,
    page: PageParams,
    *,
    community_id: uuid.UUID | None,
    status: str | None,
    sort: str,
) -> SuggestionPage:
    s = SUGGESTIONS
    filters: list[sa.ColumnElement[bool]] = []
    if community_id is not None:
        filters.append(s.c.community_id == community_id)
    if caller.kind == "member" and caller.member_id is not None:
        if community_id is not None and not await is_current_member(session, community_id, caller.member_id):
            raise NotInCommunity("Only members of the community read its board.")
        filters.append(s.c.community_id.in_(current_communities_of(caller.member_id)))
    if status is not None:
        filters.append(s.c.status == status)
    keys = (s.c.score, s.c.id) if sort == "top" else (s.c.created_at, s.c.id)
    after = keyset_after(keys, page.cursor, descending=True)
    if after is not None:
        filters.append(after)
    voted = _voted_column(caller)
    columns = [s, voted] if voted is not None else [s]
    rows = (
        await session.execute(
            sa.select(*columns).where(*filters).order_by(*(k.desc() for k in keys)).limit(page.limit + 1)
        )
    ).all()
    key = (lambda r: (r.score, r.id)) if sort == "top" else (lambda r: (r.created_at, r.id))
    items, cursor = paginate_rows(rows, page.limit, key)
    return SuggestionPage(items=[_read(r, r.voted if voted is not None else None) for r in items], next_cursor=cursor)


async def _weight(session: AsyncSession, member_id: uuid.UUID) -> int:
    rank = await session.scalar(sa.select(LEVELS.c.rank).where(LEVELS.c.member_id == member_id))
    return 1 + max(0, rank or 0)


async def vote(session: AsyncSession, suggestion_id: uuid.UUID, caller: Identity, now: datetime) -> SuggestionRead:
    """One vote per member; a repeat changes nothing."""
    if caller.kind != "member" or caller.member_id is None:
        raise Forbidden("Members vote.")
    await get_suggestion(session, suggestion_id, caller)
    weight = await _weight(session, caller.member_id)
    added = await session.scalar(
        postgresql.insert(VOTES)
        .values(suggestion_id=suggestion_id, member_id=caller.member_id, weight=weight, created_at=now)
        .on_conflict_do_nothing()
        .returning(VOTES.c.weight)
    )
    if added is not None:
        await session.execute(
            SUGGESTIONS.update()
            .where(SUGGESTIONS.c.id == suggestion_id)
            .values(votes=SUGGESTIONS.c.votes + 1, score=SUGGESTIONS.c.score + added)
        )
    return await _read_after_vote(session, suggestion_id, caller)


async def unvote(session: AsyncSession, suggestion_id: uuid.UUID, caller: Identity) -> SuggestionRead:
    if caller.kind != "member" or caller.member_id is None:
        raise Forbidden("Members vote.")
    await get_suggestion(session, suggestion_id, caller)
    removed = await session.scalar(
        VOTES.delete()
        .where(VOTES.c.suggestion_id == suggestion_id, VOTES.c.member_id == caller.member_id)
        .returning(VOTES.c.weight)
    )
    if removed is not None:
        await session.execute(
            SUGGESTIONS.update()
            .where(SUGGESTIONS.c.id == suggestion_id)
            .values(votes=SUGGESTIONS.c.votes - 1, score=SUGGESTIONS.c.score - removed)
        )
    return await _read_after_vote(session, suggestion_id, caller)


async def _read_after_vote(session: AsyncSession, suggestion_id: uuid.UUID, caller: Identity) -> SuggestionRead:
    read = await _suggestion_for(session, suggestion_id, caller)
    assert read is not None  # read under the vote's access check, in the same transaction
    return read


async def update_suggestion(
    session: AsyncSession, suggestion_id: uuid.UUID, body: SuggestionUpdate, caller: Identity, now: datetime
) -> SuggestionRead:
    """An operator's answer and status; every status change is announced, `done` also pays the author."""
    suggestion = await session.get(Suggestion, suggestion_id, with_for_update=True)
    if suggestion is None:
        raise SuggestionNotFound("No such suggestion.")
    fields = body.model_fields_set
    if "response" in fields:
        suggestion.response = body.response
    suggestion.updated_at = now
    if "status" in fields and body.status is not None and body.status != suggestion.status:
        before = suggestion.status
        suggestion.status = body.status
        await emit(
            session,
            SuggestionStatusChanged(
                suggestion_id=suggestion.id,
                community_id=suggestion.community_id,
                member_id=suggestion.member_id,
                status=body.status,
                previous_status=before,  # type: ignore[arg-type]
                response=suggestion.response,
                changed_at=now,
            ),
        )
        if body.status == "done" and suggestion.completed_at is None:
            suggestion.completed_at = now
            voters = await session.scalars(
                sa.select(VOTES.c.member_id).where(VOTES.c.suggestion_id == suggestion.id).order_by(VOTES.c.created_at)
            )
            await emit(
                session,
                SuggestionCompleted(
                    suggestion_id=suggestion.id,
                    community_id=suggestion.community_id,
                    member_id=suggestion.member_id,
                    title=suggestion.title,
                    voter_ids=list(voters),
                    completed_at=now,
                ),
            )
    await session.flush()  # the answer is read with a statement, not from the identity map
    return await get_suggestion(session, suggestion_id, caller)


async def apply_level_changed(session: AsyncSession, event: LevelChanged) -> None:
    """Remember the member's level; re-weigh their votes on suggestions not yet done or declined."""
    rank = event.rank if event.rank is not None else await _next_rank(session, event.member_id)
    insert = postgresql.insert(LEVELS)
    await session.execute(
        insert.values(
            member_id=event.member_id, level=event.level, rank=rank, changed_at=event.changed_at
        ).on_conflict_do_update(
            index_elements=[LEVELS.c.member_id],
            set_={
                "level": insert.excluded.level,
                "rank": insert.excluded.rank,
                "changed_at": insert.excluded.changed_at,
            },
            where=LEVELS.c.changed_at <= insert.excluded.changed_at,
        )
    )
    weight = 1 + max(
        0, (await session.scalar(sa.select(LEVELS.c.rank).where(LEVELS.c.member_id == event.member_id))) or 0
    )
    changed = (
        sa.select(VOTES.c.suggestion_id, (sa.literal(weight) - VOTES.c.weight).label("delta"))
        .join(SUGGESTIONS, SUGGESTIONS.c.id == VOTES.c.suggestion_id)
        .where(
            VOTES.c.member_id == event.member_id,
            VOTES.c.weight != weight,
            SUGGESTIONS.c.status.in_(("open", "planned", "in_progress")),
        )
        .cte("changed")
    )
    await session.execute(
        SUGGESTIONS.update()
        .where(SUGGESTIONS.c.id == changed.c.suggestion_id)
        .values(score=SUGGESTIONS.c.score + changed.c.delta)
    )
    await session.execute(
        VOTES.update()
        .where(
            VOTES.c.member_id == event.member_id,
            VOTES.c.suggestion_id.in_(
                sa.select(SUGGESTIONS.c.id).where(SUGGESTIONS.c.status.in_(("open", "planned", "in_progress")))
            ),
        )
        .values(weight=weight)
    )


async def _next_rank(session: AsyncSession, member_id: uuid.UUID) -> int:
    """Without a rank in the event (an older producer): one level above the last one known."""
    known = await session.scalar(sa.select(LEVELS.c.rank).where(LEVELS.c.member_id == member_id))
    return 0 if known is None else known + 1
