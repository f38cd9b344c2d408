"""The tables behind events and idempotency, defined on each service's own metadata."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from services.common.db import UTCDateTime

BigId = sa.BigInteger()


@dataclass(frozen=True)
class KitTables:
    outbox: sa.Table
    outbox_pending: sa.Table
    inbox: sa.Table
    idempotency_keys: sa.Table


def define_kit_tables(metadata: sa.MetaData) -> KitTables:
    """Outbox (events written with the change), per-subscriber pending deliveries,
    inbox (event ids already applied) and the Idempotency-Key store."""
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
    )
    outbox_pending = sa.Table(
        "outbox_pending",
        metadata,
        sa.Column("subscriber", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.Uuid(), sa.ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("attempts", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Index("ix_outbox_pending_due", "subscriber", "next_attempt_at"),
    )
    inbox = sa.Table(
        "inbox",
        metadata,
        sa.Column("event_id", sa.Uuid(), primary_key=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("source", sa.String(32), nullable=False),
        sa.Column("received_at", UTCDateTime(), nullable=False),
    )
    idempotency_keys = sa.Table(
        "idempotency_keys",
        metadata,
        sa.Column("caller", sa.String(200), primary_key=True),
        sa.Column("key", sa.String(255), primary_key=True),
        sa.Column("request_hash", sa.String(64), nullable=False),
        sa.Column("status_code", sa.Integer(), nullable=True),
        sa.Column("response_body", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.Index("ix_idempotency_keys_created_at", "created_at"),
    )
    return KitTables(outbox, outbox_pending, inbox, idempotency_keys)
