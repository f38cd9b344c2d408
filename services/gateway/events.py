"""Events the gateway consumes (it subscribes to every event, see `contracts.subscriptions`).

Every domain event fans out to the subscribed partner webhooks; `member.erased` also
revokes the member's access tokens (bumps its token version); `member.erased` and each
service's `<service>.member_erased` are recorded as the member's erasure status
(`compose.erasure`). All of it happens in the inbox's
transaction, so a redelivered event changes nothing and a failed batch leaves no trace.
"""

from __future__ import annotations

from typing import Any

from fastapi import FastAPI
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.members import MemberErased
from services.common.events import BatchHandler, Event
from services.gateway.auth.member_tokens import invalidate_after_commit, revoke_member_tokens
from services.gateway.auth.state import auth_state
from services.gateway.compose.erasure import record_erasures


class GatewayEvents:
    """The gateway's batch handler for `events_router`."""

    def __init__(self, app: FastAPI, fanout: BatchHandler) -> None:
        self.app = app
        self.fanout = fanout

    async def __call__(self, session: AsyncSession, events: list[Event[Any]]) -> None:
        erased = [event.data.member_id for event in events if isinstance(event.data, MemberErased)]
        if erased:
            await revoke_member_tokens(session, erased)
            invalidate_after_commit(session, auth_state(self.app).member_versions, erased)
        await record_erasures(session, events)
        await self.fanout(session, events)
