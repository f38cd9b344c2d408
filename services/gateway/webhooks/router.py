"""Partner webhook endpoints and their delivery log (admin only)."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import APIRouter, Query, Response, status

from services.common.db import SessionDep, utcnow, wake_after_commit
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.gateway.webhooks import service
from services.gateway.webhooks.deps import AdminCaller, EndpointDep, RuntimeDep
from services.gateway.webhooks.schemas import (
    DeliveryStatus,
    WebhookDeliveryPage,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointPage,
    WebhookEndpointRead,
    WebhookEndpointSecretRead,
    WebhookEndpointUpdate,
    WebhookReplayCreate,
    WebhookReplayRead,
)

router = APIRouter(prefix="/v1", tags=["webhooks"])
AUTH = (401, 403)


@router.post(
    "/webhook-endpoints",
    status_code=status.HTTP_201_CREATED,
    responses=problem_responses(*AUTH, 422),
)
async def create_webhook_endpoint(
    body: WebhookEndpointCreate, session: SessionDep, runtime: RuntimeDep, _admin: AdminCaller
) -> WebhookEndpointSecretRead:
    """Register a webhook endpoint; its signing secret is shown only in this answer."""
    endpoint, secret = await service.create_endpoint(session, body, runtime.box, runtime.settings)
    return WebhookEndpointSecretRead(**service.endpoint_read(endpoint).model_dump(), secret=secret)


@router.get("/webhook-endpoints", responses=problem_responses(*AUTH, 422))
async def list_webhook_endpoints(session: SessionDep, page: PageDep, _admin: AdminCaller) -> WebhookEndpointPage:
    """List webhook endpoints, newest first."""
    items, cursor = await service.list_endpoints(session, page)
    return WebhookEndpointPage(items=[service.endpoint_read(e) for e in items], next_cursor=cursor)


@router.get("/webhook-endpoints/{endpoint_id}", responses=problem_responses(*AUTH, 404))
async def get_webhook_endpoint(endpoint: EndpointDep) -> WebhookEndpointRead:
    """Get one webhook endpoint (without its secret)."""
    return service.endpoint_read(endpoint)


@router.patch("/webhook-endpoints/{endpoint_id}", responses=problem_responses(*AUTH, 404, 422))
async def update_webhook_endpoint(
    endpoint_id: uuid.UUID,
    body: WebhookEndpointUpdate,
    session: SessionDep,
    runtime: RuntimeDep,
    _admin: AdminCaller,
) -> WebhookEndpointRead:
    """Change an endpoint's URL, event types or description, or disable / re-enable it."""
    endpoint = await service.lock_endpoint(session, endpoint_id)
    was_disabled = endpoint.disabled
    endpoint = await service.update_endpoint(session, endpoint, body, runtime.settings)
    if was_disabled and not endpoint.disabled:
        wake_after_commit(session, service.WEBHOOKS_CHANNEL)
    return service.endpoint_read(endpoint)


@router.delete(
    "/webhook-endpoints/{endpoint_id}",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(*AUTH, 404),
)
async def delete_webhook_endpoint(endpoint: EndpointDep, session: SessionDep) -> Response:
    """Delete an endpoint with its delivery log; nothing more is sent to it."""
    await service.delete_endpoint(session, endpoint)
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/webhook-endpoints/{endpoint_id}/rotate-secret", responses=problem_responses(*AUTH, 404))
async def rotate_webhook_secret(
    endpoint_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, _admin: AdminCaller
) -> WebhookEndpointSecretRead:
    """Issue a new signing secret; the old one also signs until `secret_rotated_until`."""
    endpoint = await service.lock_endpoint(session, endpoint_id)
    endpoint, secret = await service.rotate_secret(session, endpoint, runtime.box, runtime.settings)
    return WebhookEndpointSecretRead(**service.endpoint_read(endpoint).model_dump(), secret=secret)


@router.post(
    "/webhook-endpoints/{endpoint_id}/test",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(*AUTH, 404, 409),
)
async def send_webhook_test(endpoint: EndpointDep, session: SessionDep, runtime: RuntimeDep) -> WebhookDeliveryRead:
    """Send a `webhook.test` message to this endpoint (watch its delivery for the outcome)."""
    delivery_id = await service.send_test(session, endpoint)
    wake_after_commit(session, service.WEBHOOKS_CHANNEL)
    return await service.get_delivery(session, delivery_id)


@router.post(
    "/webhook-endpoints/{endpoint_id}/replay",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(*AUTH, 404, 409, 422),
)
async def replay_webhook_endpoint(
    endpoint_id: uuid.UUID, body: WebhookReplayCreate, session: SessionDep, runtime: RuntimeDep, _admin: AdminCaller
) -> WebhookReplayRead:
    """Redeliver every message since a time (each keeps its `webhook-id`)."""
    endpoint = await service.lock_endpoint(session, endpoint_id)
    until = body.until or utcnow()
    replayed = await service.replay(session, endpoint, body.since, until)
    if replayed:
        wake_after_commit(session, service.WEBHOOKS_CHANNEL)
    return WebhookReplayRead(endpoint_id=endpoint.id, since=body.since, until=until, replayed=replayed)


@router.get("/webhook-endpoints/{endpoint_id}/deliveries", responses=problem_responses(*AUTH, 404, 422))
async def list_webhook_deliveries(
    endpoint: EndpointDep,
    session: SessionDep,
    page: PageDep,
    status_filter: Annotated[
        DeliveryStatus | None, Query(alias="status", description="Only deliveries in this state")
    ] = None,
) -> WebhookDeliveryPage:
    """An endpoint's deliveries, newest first, each with its attempts."""
    items, cursor = await service.list_deliveries(session, endpoint.id, page, status_filter)
    return WebhookDeliveryPage(items=items, next_cursor=cursor)


@router.get("/webhook-deliveries/{delivery_id}", responses=problem_responses(*AUTH, 404))
async def get_webhook_delivery(delivery_id: uuid.UUID, session: SessionDep, _admin: AdminCaller) -> WebhookDeliveryRead:
    """One delivery with its attempts and the body sent."""
    return await service.get_delivery(session, delivery_id)


@router.post(
    "/webhook-deliveries/{delivery_id}/retry",
    status_code=status.HTTP_202_ACCEPTED,
    responses=problem_responses(*AUTH, 404, 409),
)
async def retry_webhook_delivery(
    delivery_id: uuid.UUID, session: SessionDep, runtime: RuntimeDep, _admin: AdminCaller
) -> WebhookDeliveryRead:
    """Send a delivery again now, with a fresh round of retries (also a `failed` one)."""
    await service.retry_delivery(session, delivery_id)
    wake_after_commit(session, service.WEBHOOKS_CHANNEL)
    return await service.get_delivery(session, delivery_id)
