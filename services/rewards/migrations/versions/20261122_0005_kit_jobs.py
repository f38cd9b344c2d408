"""kit jobs: outbox deliveries as a job queue (status, lease, failure kind), job schedules

The relay's state moves out of sentinels: a parked delivery had `next_attempt_at` at
9999-12-31 and now has the status `parked`; the kind of its failures was the prefix of
`last_error` (`unavailable: ...`, `rejected: ...`) and is now `failure_kind`.

Revision ID: 0b0f692dcf8d
Revises: 2e37ee3dc64d
Create Date: 2026-11-22 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "0b0f692dcf8d"
down_revision: str | None = "2e37ee3dc64d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PARKED_AT = "9999-12-31 00:00:00+00"  # the old sentinel


def upgrade() -> None:
    op.add_column("outbox_pending", sa.Column("status", sa.String(length=16), server_default="pending", nullable=False))
    op.add_column("outbox_pending", sa.Column("lease_until", UTCDateTime(), nullable=True))
    op.add_column("outbox_pending", sa.Column("claim_token", sa.Uuid(), nullable=True))
    op.add_column("outbox_pending", sa.Column("failure_kind", sa.String(length=16), nullable=True))
    # Data: the sentinel date becomes a status, the message prefix a column (the last LIKE).
    op.execute(
        f"UPDATE outbox_pending SET status = 'parked', next_attempt_at = now() WHERE next_attempt_at >= '{PARKED_AT}'"
    )
    op.execute("UPDATE outbox_pending SET failure_kind = 'unavailable' WHERE last_error LIKE 'unavailable:%'")
    op.execute("UPDATE outbox_pending SET failure_kind = 'rejected' WHERE last_error LIKE 'rejected:%'")
    op.create_check_constraint(
        op.f("ck_outbox_pending_status"), "outbox_pending", "status IN ('pending', 'in_flight', 'parked')"
    )
    op.create_check_constraint(
        op.f("ck_outbox_pending_failure_kind"),
        "outbox_pending",
        "failure_kind IS NULL OR failure_kind IN ('unavailable', 'rejected')",
    )
    op.drop_index("ix_outbox_pending_due", table_name="outbox_pending")
    op.create_index(
        "ix_outbox_pending_due",
        "outbox_pending",
        ["subscriber", "next_attempt_at"],
        unique=False,
        postgresql_where=sa.text("status = 'pending'"),
    )
    op.create_index(
        "ix_outbox_pending_lease",
        "outbox_pending",
        ["lease_until"],
        unique=False,
        postgresql_where=sa.text("status = 'in_flight'"),
    )
    op.create_table(
        "job_schedules",
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("next_run_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("last_started_at", UTCDateTime(), nullable=True),
        sa.Column("last_finished_at", UTCDateTime(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.PrimaryKeyConstraint("name", name=op.f("pk_job_schedules")),
    )


def downgrade() -> None:
    op.drop_table("job_schedules")
    op.drop_index("ix_outbox_pending_lease", table_name="outbox_pending")
    op.drop_index("ix_outbox_pending_due", table_name="outbox_pending")
    op.create_index("ix_outbox_pending_due", "outbox_pending", ["subscriber", "next_attempt_at"], unique=False)
    # In-flight rows become plain due rows again (their claims die with the new columns).
    op.execute(f"UPDATE outbox_pending SET next_attempt_at = '{PARKED_AT}' WHERE status = 'parked'")
    op.drop_constraint(op.f("ck_outbox_pending_failure_kind"), "outbox_pending", type_="check")
    op.drop_constraint(op.f("ck_outbox_pending_status"), "outbox_pending", type_="check")
    op.drop_column("outbox_pending", "failure_kind")
    op.drop_column("outbox_pending", "claim_token")
    op.drop_column("outbox_pending", "lease_until")
    op.drop_column("outbox_pending", "status")
