"""The event catalogue: every event type partners can subscribe to, with its payload schema.

Generated from the kit's contracts (`services.common.contracts`), the same models the
producers emit and the consumers parse, so the published schemas are what is sent.
`register_webhook_catalogue(app)` publishes it in the gateway's OpenAPI document as the
OpenAPI 3.1 `webhooks` section: one entry per event type, body `{type, timestamp, data}`
exactly as `service.message_payload` writes it, with the contract's example and its
`schema_version` (`x-schema-version`). Fields may be added to a contract later (partners
must accept unknown fields); a renamed or removed field bumps the version.
"""

# No `from __future__ import annotations` here: the payload models are built at run time
# and FastAPI reads the webhook handlers' annotations as real types.
import inspect
from collections.abc import Mapping
from datetime import datetime
from typing import Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, JsonValue, create_model

from services.common.contracts import PUBLISHED_EVENT_TYPES, EventModel
from services.common.contracts.webhook import EndpointDisabled, WebhookTest

WEBHOOK_TEST = WebhookTest.event_type
ENDPOINT_DISABLED = EndpointDisabled.event_type

# Every published contract, by event type (in name order).
CATALOGUE: Mapping[str, type[EventModel]] = dict(sorted(PUBLISHED_EVENT_TYPES.items()))
EVENT_TYPES: frozenset[str] = frozenset(CATALOGUE)
# Produced by the domain services and fanned out to subscribers (webhook.* are sent directly).
DOMAIN_EVENT_TYPES: frozenset[str] = frozenset(t for t in CATALOGUE if not t.startswith("webhook."))
ALL_TYPES = "*"
EXAMPLE_TIMESTAMP = "2026-11-21T08:00:00Z"


def payload_model(event_type: str) -> type[BaseModel]:
    """The body schema `{type, timestamp, data}` of one event type, with an example body."""
    contract = CATALOGUE[event_type]
    example: dict[str, JsonValue] = {"type": event_type, "timestamp": EXAMPLE_TIMESTAMP, "data": contract.example()}
    model: type[BaseModel] = create_model(
        f"{contract.__name__}Webhook",
        __config__=ConfigDict(json_schema_extra={"examples": [example]}),
        type=(Literal[event_type], ...),  # type: ignore[valid-type,arg-type]
        timestamp=(datetime, Field(description="When the event happened (RFC 3339, UTC)")),
        data=(contract, ...),
    )
    return model


def register_webhook_catalogue(app: FastAPI) -> None:
    """Publish every event type as an OpenAPI 3.1 `webhooks` entry of the gateway."""
    for event_type, contract in CATALOGUE.items():
        body = payload_model(event_type)

        async def receive(body: BaseModel) -> None:
            """Partners implement this: answer 2xx within 15 s, or it is retried."""

        receive.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
            [inspect.Parameter("body", inspect.Parameter.POSITIONAL_OR_KEYWORD, annotation=body)],
            return_annotation=None,
        )
        app.webhooks.add_api_route(
            event_type,
            receive,
            methods=["POST"],
            summary=contract.summary(),
            description=(
                f"Schema version {contract.schema_version}. "
                "Signed per Standard Webhooks: headers `webhook-id` (stable across retries), "
                "`webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`). "
                "Fields may be added to `data` later: ignore the ones you do not know."
            ),
            operation_id=f"webhook_{event_type.replace('.', '_')}",
            name=event_type,
            status_code=200,
            openapi_extra={"x-schema-version": contract.schema_version},
        )
