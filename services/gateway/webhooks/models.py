"""Partner webhook tables: endpoints, messages (one per event), deliveries, attempts.

A message is the signed body of one event, stored once. A delivery is that message for
one endpoint (unique per pair): its `webhook-id` never changes, whatever the number of
attempts, manual retries or replays. An attempt is one HTTP call, kept as the log.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import TYPE_CHECKING

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime, new_id, table_of, utcnow
from services.gateway.db import GatewayModel

if TYPE_CHECKING:  # mypy cannot use the base built at run time as a class; it is a SQLModel
    from sqlmodel import SQLModel as Base
else:
    Base = GatewayModel

# Delivery statuses (a job queue, see services.common.jobs; the API shows these words).
# `sending` means claimed by a worker until `lease_until`, after which another may reclaim it.
PENDING, SENDING, SUCCEEDED, FAILED = "pending", "sending", "succeeded", "failed"
DELIVERY_STATUSES = (PENDING, SENDING, SUCCEEDED, FAILED)
# Why the current round of attempts started.
TRIGGER_EVENT, TRIGGER_TEST, TRIGGER_RETRY, TRIGGER_REPLAY = "event", "test", "retry", "replay"


class WebhookEndpoint(Base, table=True):
    __tablename__ = "webhook_endpoints"
    __table_args__ = (sa.Index("ix_webhook_endpoints_created_at_id", "created_at", "id"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    url: str = Field(max_length=2048)
    description: str | None = Field(default=None, max_length=500)
    event_types: list[str] = Field(sa_type=sa.JSON, default_factory=list)
    disabled: bool = Field(default=False)
    disabled_reason: str | None = Field(default=None, max_length=100)
    disabled_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # AES-GCM ciphertexts (see crypto.py): the secret must be recoverable to sign.
    secret_ciphertext: str = Field(max_length=500)
    previous_secret_ciphertext: str | None = Field(default=None, max_length=500)
    previous_secret_expires_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # Start of the current run of failed attempts; cleared by any success.
    failing_since: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookMessage(Base, table=True):
    __tablename__ = "webhook_messages"

    id: uuid.UUID = Field(primary_key=True)  # the event id
    event_type: str = Field(max_length=100)
    occurred_at: datetime = Field(sa_type=UTCDateTime, index=True)
    # The exact JSON body that is signed and sent, so every attempt sends the same bytes.
    payload: str = Field(sa_type=sa.Text)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookDelivery(Base, table=True):
    __tablename__ = "webhook_deliveries"
    __table_args__ = (
        sa.UniqueConstraint("endpoint_id", "message_id"),
        sa.Index("ix_webhook_deliveries_endpoint_id_created_at_id", "endpoint_id", "created_at", "id"),
        sa.Index("ix_webhook_deliveries_endpoint_id_next_attempt_at", "endpoint_id", "next_attempt_at"),
        sa.CheckConstraint(
            "status IN ('pending', 'sending', 'succeeded', 'failed')",
            name="status",
        ),
    )

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    endpoint_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid(), sa.ForeignKey("webhook_endpoints.id", ondelete="CASCADE"), nullable=False)
    )
    message_id: uuid.UUID = Field(
        sa_column=sa.Column(
            sa.Uuid(), sa.ForeignKey("webhook_messages.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    status: str = Field(default=PENDING, max_length=16)
    trigger: str = Field(default=TRIGGER_EVENT, max_length=16)
    attempt_count: int = Field(default=0)  # all attempts ever
    round_attempts: int = Field(default=0)  # attempts in the current round of the retry schedule
    # When the next attempt is due (pending); NULL when nothing is due (succeeded, failed,
    # or waiting while its endpoint is disabled).
    next_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime, index=True)
    # The claim of the worker sending it (sending): until when, and its token.
    lease_until: datetime | None = Field(default=None, sa_type=UTCDateTime)
    claim_token: uuid.UUID | None = Field(default=None)
    last_attempt_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    last_status_code: int | None = Field(default=None)
    last_error: str | None = Field(default=None, max_length=1000)
    delivered_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)


class WebhookAttempt(Base, table=True):
    __tablename__ = "webhook_attempts"
    __table_args__ = (sa.Index("ix_webhook_attempts_delivery_id_attempted_at", "delivery_id", "attempted_at"),)

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    delivery_id: uuid.UUID = Field(
        sa_column=sa.Column(sa.Uuid(), sa.ForeignKey("webhook_deliveries.id", ondelete="CASCADE"), nullable=False)
    )
    attempted_at: datetime = Field(sa_type=UTCDateTime)
    trigger: str = Field(max_length=16)
    status_code: int | None = Field(default=None)
    latency_ms: int = Field(default=0)
    error: str | None = Field(default=None, max_length=1000)
    response_body: str | None = Field(default=None, max_length=1000)


endpoints = table_of(WebhookEndpoint)
messages = table_of(WebhookMessage)
deliveries = table_of(WebhookDelivery)
attempts = table_of(WebhookAttempt)
