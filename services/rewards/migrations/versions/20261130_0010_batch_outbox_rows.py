"""batch outbox rows: `outbox.batch_size`, so an earning batch's `rewards.points_awarded`
events are one outbox row and one pending row per subscriber (the relay delivers each event)

Revision ID: 4d1f8b2c6e57
Revises: 9c4e2b7a1d58
Create Date: 2026-11-29 19:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "4d1f8b2c6e57"
down_revision: str | None = "9c4e2b7a1d58"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("outbox", sa.Column("batch_size", sa.Integer(), nullable=True))
    # A batch row's data is ~150 KB of JSON: lz4 compresses it for a third of pglz's CPU.
    # A server built without lz4 keeps its default.
    op.execute(
        "DO $$ BEGIN ALTER TABLE outbox ALTER COLUMN data SET COMPRESSION lz4;"
        " EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL; END $$"
    )


def downgrade() -> None:
    op.execute(
        "DO $$ BEGIN ALTER TABLE outbox ALTER COLUMN data SET COMPRESSION default;"
        " EXCEPTION WHEN feature_not_supported OR invalid_parameter_value THEN NULL; END $$"
    )
    # The previous revision's relay cannot read batch rows: refuse while one is undelivered.
    op.execute(
        "DO $$ BEGIN IF EXISTS (SELECT 1 FROM outbox_pending JOIN outbox ON outbox.id = outbox_pending.event_id"
        " WHERE outbox.batch_size IS NOT NULL) THEN"
        " RAISE EXCEPTION 'undelivered batch outbox rows: let the relay deliver them before downgrading';"
        " END IF; END $$"
    )
    op.execute("DELETE FROM outbox WHERE batch_size IS NOT NULL")
    op.drop_column("outbox", "batch_size")
