"""The event catalogue: every event type partners can subscribe to, with its payload schema.

`register_webhook_catalogue(app)` publishes it in the gateway's OpenAPI document as the
OpenAPI 3.1 `webhooks` section: one entry per event type, body `{type, timestamp, data}`.
The data schemas name the fields partners can rely on; producers may add more (the
schemas allow additional properties).
"""

# No `from __future__ import annotations` here: the payload models are built at run time
# and FastAPI reads the webhook handlers' annotations as real types.
import inspect
import uuid
from datetime import datetime
from typing import Any, Literal

from fastapi import FastAPI
from pydantic import BaseModel, ConfigDict, Field, create_model


class EventData(BaseModel):
    model_config = ConfigDict(extra="allow")


class MemberData(EventData):
    member_id: uuid.UUID
    external_id: str | None = None
    display_name: str | None = None
    changed: list[str] | None = Field(default=None, description="Fields that changed (member.updated)")


class MembershipData(EventData):
    member_id: uuid.UUID
    community_id: uuid.UUID


class MemberErasedData(EventData):
    member_id: uuid.UUID


class ActivityData(EventData):
    member_id: uuid.UUID
    community_id: uuid.UUID
    type: str = Field(description="Activity type, e.g. check_in")
    activity_id: uuid.UUID | None = None
    occurred_at: datetime | None = None
    properties: dict[str, Any] | None = None


class PostData(EventData):
    post_id: uuid.UUID
    community_id: uuid.UUID
    kind: str | None = None
    status: str | None = None
    title: str | None = None
    publish_at: datetime | None = None
    reason: str | None = Field(default=None, description="Why it was rejected (content.post_rejected)")


class PointsAwardedData(EventData):
    member_id: uuid.UUID
    points: int
    balance: int | None = None
    reason: str | None = None
    source_event_id: uuid.UUID | None = None


class LevelChangedData(EventData):
    member_id: uuid.UUID
    level: str
    previous_level: str | None = None


class BadgeAwardedData(EventData):
    member_id: uuid.UUID
    badge_code: str
    badge_id: uuid.UUID | None = None
    awarded_at: datetime | None = None


class RedemptionData(EventData):
    redemption_id: uuid.UUID
    member_id: uuid.UUID
    reward_id: uuid.UUID
    cost: int | None = None
    status: str | None = None


class TicketData(EventData):
    ticket_id: uuid.UUID
    member_id: uuid.UUID | None = None
    status: str | None = None
    previous_status: str | None = None
    priority: str | None = None
    category: str | None = None


class TicketCommentedData(EventData):
    ticket_id: uuid.UUID
    comment_id: uuid.UUID | None = None
    author_kind: str | None = None


class SlaBreachedData(EventData):
    ticket_id: uuid.UUID
    target: Literal["first_response", "resolution"] | None = None
    due_at: datetime | None = None


class CsatReceivedData(EventData):
    ticket_id: uuid.UUID
    rating: int = Field(ge=1, le=5)
    member_id: uuid.UUID | None = None


class WebhookTestData(EventData):
    endpoint_id: uuid.UUID
    message: str


class EndpointDisabledData(EventData):
    endpoint_id: uuid.UUID
    url: str
    reason: str = Field(description="`gone` (the endpoint answered 410) or `failing` (failed for too long)")
    disabled_at: datetime
    failing_since: datetime | None = None


WEBHOOK_TEST = "webhook.test"
ENDPOINT_DISABLED = "webhook.endpoint_disabled"

# The contract's event types (API.md), each with its data schema and a one-line meaning.
EVENT_CATALOGUE: dict[str, tuple[type[EventData], str]] = {
    "member.created": (MemberData, "A member was created."),
    "member.updated": (MemberData, "A member's profile changed."),
    "member.joined_community": (MembershipData, "A member joined a community."),
    "member.left_community": (MembershipData, "A member left a community."),
    "member.erased": (MemberErasedData, "A member's personal data was erased."),
    "activity.recorded": (ActivityData, "A member's activity was recorded."),
    "content.post_submitted": (PostData, "A post was submitted for review."),
    "content.post_approved": (PostData, "A post was approved."),
    "content.post_rejected": (PostData, "A post was rejected."),
    "content.post_scheduled": (PostData, "A post was scheduled."),
    "content.post_published": (PostData, "A scheduled post was published."),
    "rewards.points_awarded": (PointsAwardedData, "Points were awarded to a member."),
    "rewards.level_changed": (LevelChangedData, "A member reached a new level."),
    "rewards.badge_awarded": (BadgeAwardedData, "A member earned a badge."),
    "rewards.redemption_created": (RedemptionData, "A member redeemed a reward."),
    "rewards.redemption_cancelled": (RedemptionData, "A redemption was cancelled (points refunded)."),
    "feedback.ticket_created": (TicketData, "A ticket was filed."),
    "feedback.ticket_status_changed": (TicketData, "A ticket changed status."),
    "feedback.ticket_commented": (TicketCommentedData, "A public comment was added to a ticket."),
    "feedback.sla_breached": (SlaBreachedData, "A ticket breached its SLA."),
    "feedback.csat_received": (CsatReceivedData, "A member rated the support they got."),
    WEBHOOK_TEST: (WebhookTestData, "A test message sent from the API to one endpoint."),
    ENDPOINT_DISABLED: (EndpointDisabledData, "Another webhook endpoint was disabled."),
}
EVENT_TYPES: frozenset[str] = frozenset(EVENT_CATALOGUE)
# Produced by the domain services and fanned out to subscribers (webhook.test is sent directly).
DOMAIN_EVENT_TYPES: tuple[str, ...] = tuple(t for t in EVENT_CATALOGUE if not t.startswith("webhook."))
ALL_TYPES = "*"


def payload_model(event_type: str) -> type[BaseModel]:
    """The body schema `{type, timestamp, data}` of one event type."""
    data_model, _ = EVENT_CATALOGUE[event_type]
    name = "".join(part.title() for part in event_type.replace("_", ".").split(".")) + "Webhook"
    model: type[BaseModel] = create_model(
        name,
        type=(Literal[event_type], ...),  # type: ignore[valid-type,arg-type]
        timestamp=(datetime, Field(description="When the event happened (RFC 3339)")),
        data=(data_model, ...),
    )
    return model


def register_webhook_catalogue(app: FastAPI) -> None:
    """Publish every event type as an OpenAPI 3.1 `webhooks` entry of the gateway."""
    for event_type, (_data, summary) in EVENT_CATALOGUE.items():
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
            summary=summary,
            description=(
                "Signed per Standard Webhooks: headers `webhook-id` (stable across retries), "
                "`webhook-timestamp`, `webhook-signature` (`v1,<base64 HMAC-SHA256 of id.timestamp.body>`)."
            ),
            operation_id=f"webhook_{event_type.replace('.', '_')}",
            name=event_type,
            status_code=200,
        )
