"""Operational events the gateway sends to partner endpoints itself (not through an outbox)."""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import ConfigDict, Field

from services.common.contracts.base import EventModel, UtcDatetime

ENDPOINT_ID = "0a1b2c3d-4e5f-4a6b-8c7d-8e9f0a1b2c3d"


class WebhookTest(EventModel):
    """A test message sent from the API to one endpoint."""

    event_type = "webhook.test"
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"endpoint_id": ENDPOINT_ID, "message": "This is a test message."}]}
    )

    endpoint_id: uuid.UUID
    message: str


class EndpointDisabled(EventModel):
    """Another webhook endpoint was disabled."""

    event_type = "webhook.endpoint_disabled"
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "endpoint_id": ENDPOINT_ID,
                    "url": "https://bot.example.com/qunyun/hooks",
                    "reason": "failing",
                    "disabled_at": "2026-11-26T08:00:00Z",
                    "failing_since": "2026-11-21T08:00:00Z",
                }
            ]
        }
    )

    endpoint_id: uuid.UUID
    url: str
    reason: Literal["gone", "failing"] = Field(
        description="`gone` (the endpoint answered 410) or `failing` (failed for too long)"
    )
    disabled_at: UtcDatetime
    failing_since: UtcDatetime | None
