"""The HTTP contract of partner webhook endpoints and deliveries."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

from services.common.pagination import Page
from services.gateway.webhooks.catalogue import ALL_TYPES, EVENT_TYPES, WEBHOOK_TEST

DeliveryStatus = Literal["pending", "sending", "succeeded", "failed"]
URL_FIELD = Field(min_length=1, max_length=2048, description="http(s) URL that receives the events")
EVENT_TYPES_FIELD = Field(
    min_length=1,
    max_length=100,
    description="Event types to receive (see the `webhooks` section), or `*` for all",
)


def _check_event_types(values: list[str]) -> list[str]:
    unknown = sorted({v for v in values if v not in EVENT_TYPES and v != ALL_TYPES} | ({WEBHOOK_TEST} & set(values)))
    if unknown:
        raise ValueError(f"unknown event types: {', '.join(unknown)} (webhook.test is sent only on request)")
    return list(dict.fromkeys(values))


def _check_url(value: str) -> str:
    value = value.strip()
    if not value.lower().startswith(("http://", "https://")):
        raise ValueError("only http and https URLs are allowed")
    return value


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = URL_FIELD
    event_types: list[str] = EVENT_TYPES_FIELD
    description: str | None = Field(default=None, max_length=500)

    _types = field_validator("event_types")(_check_event_types)
    _url = field_validator("url")(_check_url)


class WebhookEndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str | None = Field(default=None, min_length=1, max_length=2048)
    event_types: list[str] | None = Field(default=None, min_length=1, max_length=100)
    description: str | None = Field(default=None, max_length=500)
    disabled: bool | None = None

    @field_validator("event_types")
    @classmethod
    def _types(cls, value: list[str] | None) -> list[str] | None:
        return None if value is None else _check_event_types(value)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str | None) -> str | None:
        return None if value is None else _check_url(value)


class WebhookEndpointRead(BaseModel):
    id: uuid.UUID
    url: str
    event_types: list[str]
    description: str | None
    disabled: bool
    disabled_reason: str | None = Field(description="`manual`, `gone` (410) or `failing`")
    disabled_at: datetime | None
    failing_since: datetime | None = Field(description="Start of the current run of failures, if any")
    secret_rotated_until: datetime | None = Field(
        description="Until then the previous secret also signs (after a rotation)"
    )
    created_at: datetime
    updated_at: datetime


class WebhookEndpointSecretRead(WebhookEndpointRead):
    """An endpoint with its signing secret: answered only on create and on rotation."""

    secret: str = Field(description="`whsec_...`: verify signatures with it; shown only now")


WebhookEndpointPage = Page[WebhookEndpointRead]


class WebhookAttemptRead(BaseModel):
    id: uuid.UUID
    attempted_at: datetime
    trigger: str = Field(description="`event`, `test`, `retry` or `replay`")
    status_code: int | None
    latency_ms: int
    error: str | None
    response_body: str | None = Field(description="The first bytes of the endpoint's answer")


class WebhookDeliveryRead(BaseModel):
    id: uuid.UUID
    endpoint_id: uuid.UUID
    webhook_id: str = Field(description="The `webhook-id` header: the same on every attempt")
    event_id: uuid.UUID
    event_type: str
    occurred_at: datetime
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    created_at: datetime
    attempts: list[WebhookAttemptRead]
    payload: dict[str, Any] | None = Field(default=None, description="The body sent (single delivery view)")


WebhookDeliveryPage = Page[WebhookDeliveryRead]


class WebhookReplayCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    since: datetime = Field(description="Redeliver every message of this endpoint whose event happened since then")
    until: datetime | None = Field(default=None, description="Up to this time (default: now)")

    @field_validator("since", "until")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("give a time zone (RFC 3339), e.g. 2026-11-21T08:00:00Z")
        return value


class WebhookReplayRead(BaseModel):
    endpoint_id: uuid.UUID
    since: datetime
    until: datetime
    replayed: int = Field(description="How many deliveries were scheduled again")
