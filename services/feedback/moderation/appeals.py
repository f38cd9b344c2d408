"""Appeals: a ticket of category `appeal` names one of its owner's sanctions; granting the
appeal lifts the sanction and removes the strike behind it. Tickets call these functions,
never moderation's tables."""

from __future__ import annotations

import uuid
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from services.feedback.moderation.errors import invalid
from services.feedback.moderation.sanctions import service as sanctions


async def check_appeal(
    session: AsyncSession, category: str, sanction_id: uuid.UUID | None, owner_id: uuid.UUID
) -> None:
    """A `sanction_id` goes with an appeal, and names a sanction of the ticket's owner (422 otherwise)."""
    if sanction_id is None:
        return
    if category != "appeal":
        raise invalid("sanction_id", "only an appeal names a sanction")
    if await sanctions.sanction_of(session, sanction_id, owner_id) is None:
        raise invalid("sanction_id", "not a sanction of this member")


async def decide(
    session: AsyncSession, sanction_id: uuid.UUID | None, decision: str | None, by: str, now: datetime
) -> None:
    """The decision given when an appeal is resolved (none: the sanction stands)."""
    if decision is None:
        return
    if sanction_id is None:
        raise invalid("appeal", "only an appeal that names a sanction is decided")
    if decision == "grant":
        await sanctions.grant_appeal(session, sanction_id, by, now)
