"""Dependencies of the webhook routes: the admin caller, the runtime, load-or-404."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from services.common.db import SessionDep
from services.gateway.auth import deps as auth_deps
from services.gateway.webhooks.models import WebhookEndpoint
from services.gateway.webhooks.runtime import WebhookRuntime
from services.gateway.webhooks.service import get_endpoint

# Webhook management is admin-only (API.md), with the same credentials and OpenAPI security
# schemes as every other gateway route.
AdminCaller = auth_deps.AdminCaller


def webhook_runtime(request: Request) -> WebhookRuntime:
    runtime: WebhookRuntime = request.app.state.webhooks
    return runtime


RuntimeDep = Annotated[WebhookRuntime, Depends(webhook_runtime)]


async def endpoint_or_404(endpoint_id: uuid.UUID, session: SessionDep, _admin: AdminCaller) -> WebhookEndpoint:
    return await get_endpoint(session, endpoint_id)


EndpointDep = Annotated[WebhookEndpoint, Depends(endpoint_or_404)]
