"""The rules of partner webhooks: endpoints, fan-out of events, retries and replays.

Plain async functions on a session: they add and flush, the caller commits once.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.webhook import EndpointDisabled, WebhookTest
from services.common.db import new_id, rfc3339, utcnow
from services.common.pagination import PageParams, keyset_after, paginate_rows
from services.common.problems import Conflict, NotFound, Unprocessable
from services.common.settings import Settings
from services.gateway.webhooks.catalogue import ALL_TYPES
from services.gateway.webhooks.crypto import SecretBox, generate_secret
from services.gateway.webhooks.models import (
    FAILED,
    PENDING,
    SENDING,
    SUCCEEDED,
    TRIGGER_EVENT,
    TRIGGER_REPLAY,
    TRIGGER_RETRY,
    TRIGGER_TEST,
    WebhookEndpoint,
    attempts,
    deliveries,
    endpoints,
    messages,
)
from services.gateway.webhooks.schemas import (
    WebhookAttemptRead,
    WebhookDeliveryRead,
    WebhookEndpointCreate,
    WebhookEndpointRead,
    WebhookEndpointUpdate,
)
from services.gateway.webhooks.ssrf import UnsafeUrl, check_url

DISABLED_MANUAL, DISABLED_GONE, DISABLED_FAILING = "manual", "gone", "failing"


class WebhookEndpointNotFound(NotFound):
    slug, title = "webhook-endpoint-not-found", "Webhook endpoint not found"


class WebhookDeliveryNotFound(NotFound):
    slug, title = "webhook-delivery-not-found", "Webhook delivery not found"


class UnsafeWebhookUrl(Unprocessable):
    slug, title = "unsafe-webhook-url", "Webhook URL not allowed"


class WebhookEndpointDisabled(Conflict):
    slug, title = "webhook-endpoint-disabled", "Webhook endpoint is disabled"


class DeliveryInFlight(Conflict):
    slug, title = "webhook-delivery-in-flight", "Delivery is being sent"


@dataclass(frozen=True)
class MessageDraft:
    """One event to turn into a signed message."""

    id: uuid.UUID
    type: str
    occurred_at: datetime
    data: dict[str, Any]


def message_payload(draft: MessageDraft) -> str:
    """The exact body sent: `{type, timestamp, data}` (Standard Webhooks)."""
    body = {"type": draft.type, "timestamp": rfc3339(draft.occurred_at), "data": draft.data}
    return json.dumps(body, separators=(",", ":"), default=str)


def webhook_id(message_id: uuid.UUID) -> str:
    """The `webhook-id` of a message: the same on every attempt, retry and replay."""
    return f"msg_{message_id.hex}"


def subscribes(event_types: Sequence[str], event_type: str) -> bool:
    return event_type in event_types or ALL_TYPES in event_types


# The wake-up channel of a commit that made deliveries due (the delivery worker listens).
WEBHOOKS_CHANNEL = "webhooks"


# Fan-out ------------------------------------------------------------------------------


async def fan_out(
    session: AsyncSession,
    drafts: Sequence[MessageDraft],
    *,
    exclude_endpoint: uuid.UUID | None = None,
) -> int:
    """Store each event's message and one pending delivery per subscribed, enabled endpoint.

    Set-based: one read of the enabled endpoints and two multi-row inserts per batch.
    Returns the number of deliveries created.
    """
    if not drafts:
        return 0
    subscribed = (
        await session.execute(sa.select(endpoints.c.id, endpoints.c.event_types).where(endpoints.c.disabled.is_(False)))
    ).all()
    now = utcnow()
    message_rows: list[dict[str, Any]] = []
    delivery_rows: list[dict[str, Any]] = []
    for draft in drafts:
        targets = [
            row.id for row in subscribed if row.id != exclude_endpoint and subscribes(row.event_types, draft.type)
        ]
        if not targets:
            continue
        message_rows.append(
            {
                "id": draft.id,
                "event_type": draft.type,
                "occurred_at": draft.occurred_at,
                "payload": message_payload(draft),
                "created_at": now,
            }
        )
        delivery_rows.extend(_new_delivery(endpoint_id, draft.id, now, TRIGGER_EVENT) for endpoint_id in targets)
    if delivery_rows:
        await session.execute(messages.insert(), message_rows)
        await session.execute(deliveries.insert(), delivery_rows)
    return len(delivery_rows)


def _new_delivery(endpoint_id: uuid.UUID, message_id: uuid.UUID, now: datetime, trigger: str) -> dict[str, Any]:
    return {
        "id": new_id(),
        "endpoint_id": endpoint_id,
        "message_id": message_id,
        "status": PENDING,
        "trigger": trigger,
        "attempt_count": 0,
        "round_attempts": 0,
        "next_attempt_at": now,
        "created_at": now,
    }


# Endpoints ----------------------------------------------------------------------------


async def _vet_url(url: str, settings: Settings) -> None:
    try:
        await check_url(url, allow_private=settings.webhook_allow_private)
    except UnsafeUrl as exc:
        raise UnsafeWebhookUrl(str(exc), errors=[{"loc": ["body", "url"], "msg": str(exc)}]) from exc


async def create_endpoint(
    session: AsyncSession, data: WebhookEndpointCreate, box: SecretBox, settings: Settings
) -> tuple[WebhookEndpoint, str]:
    """Register an endpoint; returns it with its new secret (shown once)."""
    await _vet_url(data.url, settings)
    secret = generate_secret()
    endpoint_id = new_id()
    endpoint = WebhookEndpoint(
        id=endpoint_id,
        url=data.url,
        event_types=data.event_types,
        description=data.description,
        secret_ciphertext=box.encrypt(secret, endpoint_id),
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise WebhookEndpointNotFound("No webhook endpoint with this id.")
    return endpoint


async def lock_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    """Load an endpoint for a change, holding its row lock until commit."""
    stmt = sa.select(WebhookEndpoint).where(WebhookEndpoint.id == endpoint_id).with_for_update()  # type: ignore[arg-type]
    endpoint = (await session.execute(stmt)).scalar_one_or_none()
    if endpoint is None:
        raise WebhookEndpointNotFound("No webhook endpoint with this id.")
    return endpoint


async def list_endpoints(session: AsyncSession, page: PageParams) -> tuple[list[WebhookEndpoint], str | None]:
    order = (endpoints.c.created_at, endpoints.c.id)
    stmt = sa.select(WebhookEndpoint).order_by(*(c.desc() for c in order)).limit(page.limit + 1)
    after = keyset_after(order, page.cursor, descending=True)
    if after is not None:
        stmt = stmt.where(after)
    rows = (await session.execute(stmt)).scalars().all()
    return paginate_rows(rows, page.limit, lambda e: (e.created_at.isoformat(), str(e.id)))


async def update_endpoint(
    session: AsyncSession, endpoint: WebhookEndpoint, data: WebhookEndpointUpdate, settings: Settings
) -> WebhookEndpoint:
    """Change url, types, description, or disable/enable (enabling resumes parked deliveries)."""
    changes = data.model_dump(exclude_unset=True)
    if changes.get("url") is not None:
        await _vet_url(changes["url"], settings)
        endpoint.url = changes["url"]
    if changes.get("event_types") is not None:
        endpoint.event_types = changes["event_types"]
    if "description" in changes:
        endpoint.description = changes["description"]
    now = utcnow()
    if changes.get("disabled") is True and not endpoint.disabled:
        endpoint.disabled, endpoint.disabled_reason, endpoint.disabled_at = True, DISABLED_MANUAL, now
        await park_deliveries(session, [endpoint.id])
    elif changes.get("disabled") is False and endpoint.disabled:
        endpoint.disabled, endpoint.disabled_reason, endpoint.disabled_at = False, None, None
        endpoint.failing_since = None
        await session.execute(
            deliveries.update()
            .where(
                deliveries.c.endpoint_id == endpoint.id,
                deliveries.c.status == PENDING,
                deliveries.c.next_attempt_at.is_(None),
            )
            .values(next_attempt_at=now)
        )
    endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    return endpoint


async def park_deliveries(session: AsyncSession, endpoint_ids: Sequence[uuid.UUID]) -> None:
    """A disabled endpoint's pending deliveries wait, costing the worker nothing, until re-enabled."""
    await session.execute(
        deliveries.update()
        .where(deliveries.c.endpoint_id.in_(endpoint_ids), deliveries.c.status == PENDING)
        .values(next_attempt_at=None)
    )


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    """Remove an endpoint with its deliveries and attempts (the database cascades)."""
    await session.execute(endpoints.delete().where(endpoints.c.id == endpoint.id))


async def rotate_secret(
    session: AsyncSession, endpoint: WebhookEndpoint, box: SecretBox, settings: Settings
) -> tuple[WebhookEndpoint, str]:
    """A new secret; the current one keeps signing too (second signature) for the grace period."""
    now = utcnow()
    secret = generate_secret()
    endpoint.previous_secret_ciphertext = endpoint.secret_ciphertext
    endpoint.previous_secret_expires_at = now + timedelta(seconds=settings.webhook_secret_grace_seconds)
    endpoint.secret_ciphertext = box.encrypt(secret, endpoint.id)
    endpoint.updated_at = now
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def send_test(session: AsyncSession, endpoint: WebhookEndpoint) -> uuid.UUID:
    """Queue a `webhook.test` message for this endpoint only; returns the delivery id."""
    if endpoint.disabled:
        raise WebhookEndpointDisabled("Enable the endpoint before sending it a test message.")
    now = utcnow()
    test = WebhookTest(endpoint_id=endpoint.id, message="This is a test message.")
    draft = MessageDraft(new_id(), test.event_type, now, test.model_dump(mode="json"))
    await session.execute(
        messages.insert().values(
            id=draft.id, event_type=draft.type, occurred_at=now, payload=message_payload(draft), created_at=now
        )
    )
    row = _new_delivery(endpoint.id, draft.id, now, TRIGGER_TEST)
    await session.execute(deliveries.insert().values(**row))
    return row["id"]  # type: ignore[no-any-return]


def endpoint_read(endpoint: WebhookEndpoint) -> WebhookEndpointRead:
    grace = endpoint.previous_secret_expires_at
    return WebhookEndpointRead(
        id=endpoint.id,
        url=endpoint.url,
        event_types=endpoint.event_types,
        description=endpoint.description,
        disabled=endpoint.disabled,
        disabled_reason=endpoint.disabled_reason,
        disabled_at=endpoint.disabled_at,
        failing_since=endpoint.failing_since,
        secret_rotated_until=grace if grace and grace > utcnow() else None,
        created_at=endpoint.created_at,
        updated_at=endpoint.updated_at,
    )


# Deliveries ---------------------------------------------------------------------------

_DELIVERY_COLUMNS = (
    deliveries.c.id,
    deliveries.c.endpoint_id,
    deliveries.c.message_id,
    deliveries.c.status,
    deliveries.c.attempt_count,
    deliveries.c.next_attempt_at,
    deliveries.c.last_status_code,
    deliveries.c.last_error,
    deliveries.c.delivered_at,
    deliveries.c.created_at,
    messages.c.event_type,
    messages.c.occurred_at,
)


async def list_deliveries(
    session: AsyncSession, endpoint_id: uuid.UUID, page: PageParams, status: str | None = None
) -> tuple[list[WebhookDeliveryRead], str | None]:
    """Newest first, each with its attempts (two queries for the whole page)."""
    order = (deliveries.c.created_at, deliveries.c.id)
    stmt = (
        sa.select(*_DELIVERY_COLUMNS)
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.endpoint_id == endpoint_id)
        .order_by(*(c.desc() for c in order))
        .limit(page.limit + 1)
    )
    if status is not None:
        stmt = stmt.where(deliveries.c.status == status)
    after = keyset_after(order, page.cursor, descending=True)
    if after is not None:
        stmt = stmt.where(after)
    rows = (await session.execute(stmt)).all()
    items, cursor = paginate_rows(rows, page.limit, lambda r: (r.created_at.isoformat(), str(r.id)))
    return await _with_attempts(session, items), cursor


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDeliveryRead:
    stmt = (
        sa.select(*_DELIVERY_COLUMNS, messages.c.payload)
        .join(messages, messages.c.id == deliveries.c.message_id)
        .where(deliveries.c.id == delivery_id)
    )
    row = (await session.execute(stmt)).one_or_none()
    if row is None:
        raise WebhookDeliveryNotFound("No webhook delivery with this id.")
    (read,) = await _with_attempts(session, [row])
    read.payload = json.loads(row.payload)
    return read


async def _with_attempts(session: AsyncSession, rows: Sequence[Any]) -> list[WebhookDeliveryRead]:
    by_delivery: dict[uuid.UUID, list[WebhookAttemptRead]] = {row.id: [] for row in rows}
    if rows:
        stmt = (
            sa.select(attempts)
            .where(attempts.c.delivery_id.in_(list(by_delivery)))
            .order_by(attempts.c.attempted_at, attempts.c.id)
        )
        for attempt in (await session.execute(stmt)).all():
            by_delivery[attempt.delivery_id].append(
                WebhookAttemptRead(
                    id=attempt.id,
                    attempted_at=attempt.attempted_at,
                    trigger=attempt.trigger,
                    status_code=attempt.status_code,
                    latency_ms=attempt.latency_ms,
                    error=attempt.error,
                    response_body=attempt.response_body,
                )
            )
    return [
        WebhookDeliveryRead(
            id=row.id,
            endpoint_id=row.endpoint_id,
            webhook_id=webhook_id(row.message_id),
            event_id=row.message_id,
            event_type=row.event_type,
            occurred_at=row.occurred_at,
            status=row.status,
            attempt_count=row.attempt_count,
            next_attempt_at=row.next_attempt_at if row.status == PENDING else None,
            last_status_code=row.last_status_code,
            last_error=row.last_error,
            delivered_at=row.delivered_at,
            created_at=row.created_at,
            attempts=by_delivery[row.id],
        )
        for row in rows
    ]


async def retry_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> None:
    """Start a new round of attempts now (also for a `failed` or `succeeded` delivery)."""
    result = await session.execute(
        deliveries.update()
        .where(deliveries.c.id == delivery_id, deliveries.c.status != SENDING)
        .values(status=PENDING, trigger=TRIGGER_RETRY, round_attempts=0, next_attempt_at=utcnow())
        .returning(deliveries.c.endpoint_id)
    )
    endpoint_id = result.scalar_one_or_none()
    if endpoint_id is None:
        exists = await session.scalar(sa.select(deliveries.c.status).where(deliveries.c.id == delivery_id))
        if exists is None:
            raise WebhookDeliveryNotFound("No webhook delivery with this id.")
        raise DeliveryInFlight("This delivery is being sent right now; retry once the attempt is recorded.")
    if await session.scalar(sa.select(endpoints.c.disabled).where(endpoints.c.id == endpoint_id)):
        raise WebhookEndpointDisabled("Enable the endpoint before retrying its deliveries.")


async def replay(session: AsyncSession, endpoint: WebhookEndpoint, since: datetime, until: datetime) -> int:
    """Redeliver every message of this endpoint whose event happened in [since, until].

    The existing deliveries start a new round, so each keeps its `webhook-id`; the ones
    being sent right now are left to finish.
    """
    if endpoint.disabled:
        raise WebhookEndpointDisabled("Enable the endpoint before replaying to it.")
    if since > until:
        raise Unprocessable(
            "`since` must not be after `until`.", errors=[{"loc": ["body", "since"], "msg": "after until"}]
        )
    in_window = sa.select(messages.c.id).where(messages.c.occurred_at >= since, messages.c.occurred_at <= until)
    result = await session.execute(
        deliveries.update()
        .where(
            deliveries.c.endpoint_id == endpoint.id,
            deliveries.c.status.in_((PENDING, SUCCEEDED, FAILED)),
            deliveries.c.message_id.in_(in_window.scalar_subquery()),
        )
        .values(status=PENDING, trigger=TRIGGER_REPLAY, round_attempts=0, next_attempt_at=utcnow())
    )
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


async def disabled_notice(session: AsyncSession, disabled: Sequence[Any], reason: str) -> int:
    """Tell the endpoints that subscribe to `webhook.endpoint_disabled` (not the disabled ones)."""
    total = 0
    now = utcnow()
    for row in disabled:
        # Validated, not constructed: `reason` comes untyped from the delivery worker.
        notice = EndpointDisabled.model_validate(
            {
                "endpoint_id": row.id,
                "url": row.url,
                "reason": reason,
                "disabled_at": now,
                "failing_since": row.failing_since,
            }
        )
        draft = MessageDraft(new_id(), notice.event_type, now, notice.model_dump(mode="json"))
        total += await fan_out(session, [draft], exclude_endpoint=row.id)
    return total
