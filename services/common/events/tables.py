"""The tables behind events and idempotency, defined on each service's own metadata."""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa

from services.common.db import UTCDateTime
from services.common.jobs.queue import IN_FLIGHT, PARKED, PENDING, job_columns, status_check

BigId = sa.BigInteger()
RELAY_STATUSES = (PENDING, IN_FLIGHT, PARKED)


@dataclass(frozen=True)
class KitTables:
    outbox: sa.Table
    outbox_pending: sa.Table
    inbox: sa.Table
    idempotency_keys: sa.Table
    job_schedules: sa.Table


def define_kit_tables(metadata: sa.MetaData, *, batches: bool = False) -> KitTables:
    """Outbox (events written with the change), per-subscriber pending deliveries,
    inbox (event ids already applied), the Idempotency-Key store and periodic job runs.

    `batches`: the outbox may also hold batch rows (`batch_size` set), each carrying many
    events of one type in `data` (see `outbox.Outbox.write_batch`); only a service that
    emits in bulk (members' ingest) has the column."""
    batch_columns = (
        # NULL: the row is one event (`data` is its data). N: the row carries N events of its
        # type, `data` is their list of {id, occurred_at, data}; the relay delivers each.
        [sa.Column("batch_size", sa.Integer(), nullable=True)] if batches else []
    )
    outbox = sa.Table(
        "outbox",
        metadata,
        sa.Column("seq", BigId, primary_key=True, autoincrement=True),
        sa.Column("id", sa.Uuid(), nullable=False, unique=True),
        sa.Column("type", sa.String(100), nullable=False),
        sa.Column("occurred_at", UTCDateTime(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        *batch_columns,
    )
    # One delivery job per event and subscriber (a job queue, see services.common.jobs):
    # pending, in flight (leased by a relay) or parked; deleted once delivered.
    outbox_pending = sa.Table(
        "outbox_pending",
        metadata,
        sa.Column("subscriber", sa.String(32), primary_key=True),
        sa.Column("event_id", sa.Uuid(), sa.ForeignKey("outbox.id", ondelete="CASCADE"), primary_key=True),
        *job_columns(),
        # The kind of the current run of failures (`attempts` counts them): the subscriber
        # was unavailable, or it rejected this event. NULL before any failure.
        sa.Column("failure_kind", sa.String(16), nullable=True),
        status_check(RELAY_STATUSES),
        sa.CheckConstraint("failure_kind IS NULL OR failure_kind IN ('unavailable', 'rejected')", name="failure_kind"),
        sa.Index(
            "ix_outbox_pending_due", "subscriber", "next_attempt_at", postgresql_where=sa.text("status = 'pending'")
        ),
        sa.Index("ix_outbox_pending_lease", "lease_until", postgresql_where=sa.text("status = 'in_flight'")),
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
    # Runs of periodic jobs that one replica per interval does (housekeeping), see jobs.periodic.
    job_schedules = sa.Table(
        "job_schedules",
        metadata,
        sa.Column("name", sa.String(100), primary_key=True),
        sa.Column("next_run_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
    )
    return KitTables(outbox, outbox_pending, inbox, idempotency_keys, job_schedules)
