"""member sanctions (from moderation events) and ledger entries of 0 points for rules skipped
while a member is muted or banned

Revision ID: 588bba8cd86a
Revises: 7c2d4e8f1a90
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "588bba8cd86a"
down_revision: str | None = "7c2d4e8f1a90"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_sanctions",
        sa.Column("sanction_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("applied_at", UTCDateTime(), nullable=True),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.Column("lifted_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("sanction_id", name=op.f("pk_member_sanctions")),
    )
    op.create_index("ix_member_sanctions_member", "member_sanctions", ["member_id", "community_id"], unique=False)
    op.add_column("ledger_entries", sa.Column("skipped_because", sa.String(length=16), nullable=True))
    op.drop_constraint(op.f("ck_ledger_entries_delta_not_zero"), "ledger_entries", type_="check")
    op.create_check_constraint(
        op.f("ck_ledger_entries_delta_zero_only_when_skipped"),
        "ledger_entries",
        "(delta <> 0) = (skipped_because IS NULL)",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_ledger_entries_delta_zero_only_when_skipped"), "ledger_entries", type_="check")
    op.execute("DELETE FROM ledger_entries WHERE skipped_because IS NOT NULL")
    op.create_check_constraint(op.f("ck_ledger_entries_delta_not_zero"), "ledger_entries", "delta <> 0")
    op.drop_column("ledger_entries", "skipped_because")
    op.drop_index("ix_member_sanctions_member", table_name="member_sanctions")
    op.drop_table("member_sanctions")
