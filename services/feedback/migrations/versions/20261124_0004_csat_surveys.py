"""csat surveys: the survey a resolution owes, as a job queue (lease, status, retry time)

Revision ID: 5c3e9a1f7d20
Revises: cafd17debbc4
Create Date: 2026-11-24 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "5c3e9a1f7d20"
down_revision: str | None = "cafd17debbc4"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

WAITING = "status IN ('pending', 'in_flight')"


def upgrade() -> None:
    op.create_table(
        "csat_surveys",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("status", sa.String(length=16), server_default="pending", nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("next_attempt_at", UTCDateTime(), nullable=False),
        sa.Column("lease_until", UTCDateTime(), nullable=True),
        sa.Column("claim_token", sa.Uuid(), nullable=True),
        sa.Column("last_error", sa.Text(), nullable=True),
        sa.Column("outcome", sa.String(length=32), nullable=True),
        sa.Column("permit_id", sa.Uuid(), nullable=True),
        sa.Column("enqueued_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("status IN ('pending', 'in_flight', 'done')", name=op.f("ck_csat_surveys_status")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_csat_surveys_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_csat_surveys")),
    )
    op.create_index(
        "ix_csat_surveys_waiting", "csat_surveys", ["next_attempt_at"], unique=False, postgresql_where=sa.text(WAITING)
    )


def downgrade() -> None:
    op.drop_index("ix_csat_surveys_waiting", table_name="csat_surveys", postgresql_where=sa.text(WAITING))
    op.drop_table("csat_surveys")
