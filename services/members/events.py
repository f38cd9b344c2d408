"""Events the members service emits and the handlers for those it consumes.

Emitted (written to the outbox in the transaction of the change; their contracts are in
`services.common.contracts.members` and `.activity`; payloads carry ids and non-personal
fields only, never email or phone): `member.created`, `member.updated`,
`member.joined_community`, `member.left_community`, `member.erased`, `activity.recorded`.

Consumed: `content.poll_voted`, recorded as `poll_voted` activity with the vote's id as the
activity id (a redelivery is a duplicate), so it reaches rewards as `activity.recorded`
like any other activity.
"""

from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.content import PollVoted
from services.common.events import Event, EventHandlers
from services.members.activity.schemas import ActivityCreate
from services.members.activity.service import record_activities


async def handle_poll_voted(session: AsyncSession, event: Event[PollVoted]) -> None:
    vote = event.data
    await record_activities(
        session,
        [
            ActivityCreate(
                id=vote.vote_id,
                member_id=vote.member_id,
                community_id=vote.community_id,
                type="poll_voted",
                occurred_at=vote.voted_at,
                properties={"post_id": str(vote.post_id)},
            )
        ],
    )


EVENT_HANDLERS: EventHandlers = {PollVoted: handle_poll_voted}
