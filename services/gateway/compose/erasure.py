"""Erasure status: which services have confirmed a member's erasure, and when.

Why events, not a status endpoint on each service: a service confirms in the transaction
that erases (its outbox row commits with the erasure, or neither does), so a confirmation
can never claim more than was done, nor get lost; the gateway keeps the proof in one place,
so the answer does not depend on every service being up when an operator asks; and a
service that erased everything has nothing left to answer a status call with (content
deletes its rows outright), whereas the event outlives the data. Partners may subscribe to
the confirmations too.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import insert
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.erasure import ERASURE_CONFIRMATIONS, MemberErasureConfirmed
from services.common.contracts.members import MemberErased
from services.common.db import table_of
from services.common.events import Event
from services.common.problems import NotFound
from services.gateway.compose.models import MemberErasure
from services.gateway.compose.schemas import ErasureStatusRead, ServiceErasure

ERASURES = table_of(MemberErasure)
# Members erases first (the request itself); then every service that holds member data.
CONFIRMING_SERVICES = ("members", *ERASURE_CONFIRMATIONS)
_SERVICE_OF = {model.event_type: service for service, model in ERASURE_CONFIRMATIONS.items()}


class ErasureNotFound(NotFound):
    slug, title = "erasure-not-found", "No erasure on record"


async def record_erasures(session: AsyncSession, events: Iterable[Event[Any]]) -> None:
    """Keep every erasure request (`member.erased`) and confirmation (`<service>.member_erased`)."""
    rows = []
    for event in events:
        if isinstance(event.data, MemberErased):
            service = "members"
        elif isinstance(event.data, MemberErasureConfirmed):
            service = _SERVICE_OF[event.type]
        else:
            continue
        rows.append(
            {
                "member_id": event.data.member_id,
                "service": service,
                "erased_at": event.data.erased_at,
                "event_id": event.id,
            }
        )
    if rows:
        # The first confirmation stands (a service confirms once; a replay changes nothing).
        await session.execute(insert(ERASURES).values(rows).on_conflict_do_nothing())


async def erasure_status(session: AsyncSession, member_id: uuid.UUID) -> ErasureStatusRead:
    rows = (
        await session.execute(
            sa.select(ERASURES.c.service, ERASURES.c.erased_at).where(ERASURES.c.member_id == member_id)
        )
    ).all()
    confirmed = {row.service: row.erased_at for row in rows}
    if "members" not in confirmed:
        raise ErasureNotFound("No erasure of this member is on record.")
    services = [
        ServiceErasure(
            service=service,  # type: ignore[arg-type]
            status="erased" if service in confirmed else "pending",
            erased_at=confirmed.get(service),
        )
        for service in CONFIRMING_SERVICES
    ]
    complete = all(s.status == "erased" for s in services)
    return ErasureStatusRead(
        member_id=member_id,
        requested_at=confirmed["members"],
        complete=complete,
        completed_at=max(confirmed.values()) if complete else None,
        services=services,
    )
