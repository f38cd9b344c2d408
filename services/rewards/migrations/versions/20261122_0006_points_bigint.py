"""points bigint: every points and cost column of rewards becomes BIGINT

Balances and lifetime totals were 32-bit (2,147,483,647 at most). Each ALTER rewrites its
table under an exclusive lock: run it in a maintenance window on a large ledger.

Revision ID: 7c2d4e8f1a90
Revises: 0b0f692dcf8d
Create Date: 2026-11-22 10:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7c2d4e8f1a90"
down_revision: str | None = "0b0f692dcf8d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

COLUMNS = (
    ("accounts", "balance", False),
    ("accounts", "lifetime", False),
    ("ledger_entries", "delta", False),
    ("ledger_entries", "balance_after", False),
    ("lots", "points", False),
    ("lots", "remaining", False),
    ("lot_consumptions", "points", False),
    ("adjustments", "delta", False),
    ("daily_earnings", "points", False),
    ("period_points", "points", False),
    ("period_points_counts", "points", False),
    ("rewards", "cost", False),
    ("redemptions", "cost", False),
    ("earning_rules", "points", False),
    ("earning_rules", "daily_cap", True),
    ("levels", "min_lifetime_points", False),
)


def upgrade() -> None:
    for table, column, nullable in COLUMNS:
        op.alter_column(table, column, existing_type=sa.Integer(), type_=sa.BigInteger(), existing_nullable=nullable)


def downgrade() -> None:
    # Fails (out of range) if some value no longer fits 32 bits: nothing is truncated.
    for table, column, nullable in reversed(COLUMNS):
        op.alter_column(table, column, existing_type=sa.BigInteger(), type_=sa.Integer(), existing_nullable=nullable)
