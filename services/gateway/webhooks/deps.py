"""Dependencies of the webhook routes: the admin caller, the runtime, load-or-404."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from services.common.db import SessionDep
from services.common.identity import Identity
from services.common.problems import Forbidden, Unauthorized
from services.gateway.auth import identify
from services.gateway.webhooks.models import WebhookEndpoint
from services.gateway.webhooks.runtime import WebhookRuntime
from services.gateway.webhooks.service import get_endpoint


async def admin_caller(request: Request) -> Identity:
    """The caller, who must be an admin (401 without credentials, 403 without the role).

    `app.state.identify_caller`, when set, replaces the gateway's identification (tests).
    """
    resolve = getattr(request.app.state, "identify_caller", None) or identify.identify_caller
    caller: Identity | None = await resolve(request)
    if caller is None:
        raise Unauthorized("Sign in as an admin to manage webhooks.")
    if not caller.is_admin:
        raise Forbidden("Only admins manage webhooks.")
    return caller


AdminCaller = Annotated[Identity, Depends(admin_caller)]


def webhook_runtime(request: Request) -> WebhookRuntime:
    runtime: WebhookRuntime = request.app.state.webhooks
    return runtime


RuntimeDep = Annotated[WebhookRuntime, Depends(webhook_runtime)]


async def endpoint_or_404(endpoint_id: uuid.UUID, session: SessionDep, _admin: AdminCaller) -> WebhookEndpoint:
    return await get_endpoint(session, endpoint_id)


EndpointDep = Annotated[WebhookEndpoint, Depends(endpoint_or_404)]
