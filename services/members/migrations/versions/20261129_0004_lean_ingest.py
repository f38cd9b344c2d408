"""lean ingest: no foreign keys on activities, last_active_at in member_activity, batch outbox rows

- `activities` loses its foreign keys to members and communities: ingest resolves both in
  the same request, and members are never deleted (erasure keeps the row). It also loses its
  (community_id, occurred_at) index, which no query reads (analytics reads the rollups;
  export and erasure go by member): one B-tree entry less per recorded event.
- `members.last_active_at` (and its index, which no query could use) moves to the narrow
  `member_activity`, so ingest no longer rewrites a wide row and six index entries per
  member and batch.
- `outbox.batch_size`: a row may carry a whole batch of `activity.recorded` (the relay
  delivers each event); its `data` is compressed with lz4 where the server has it.

Revision ID: 9c2e4f1a7b30
Revises: 313868a3e51e
Create Date: 2026-11-29 17:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "9c2e4f1a7b30"
down_revision: str | None = "313868a3e51e"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.drop_index("ix_activities_community_id_occurred_at", table_name="activities")
    op.drop_constraint(op.f("fk_activities_community_id_communities"), "activities", type_="foreignkey")
    op.drop_constraint(op.f("fk_activities_member_id_members"), "activities", type_="foreignkey")
    op.create_table(
        "member_activity",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("last_active_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["member_id"], ["members.id"], name=op.f("fk_member_activity_member_id_members"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_activity")),
    )
    op.execute(
        "INSERT INTO member_activity (member_id, last_active_at)"
        " SELECT id, last_active_at FROM members WHERE last_active_at IS NOT NULL"
    )
    op.drop_index(op.f("ix_members_last_active_at"), table_name="members")
    op.drop_column("members", "last_active_at")
    op.add_column("outbox", sa.Column("batch_size", sa.Integer(), nullable=True))
    # A batch row's data is ~300 KB of JSON: lz4 compresses it for a third of pglz's CPU.
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
    # Delivered batch rows stay until housekeeping purges them, and the previous revision's
    # erasure cannot see inside them: drop them with the column.
    op.execute("DELETE FROM outbox WHERE batch_size IS NOT NULL")
    op.drop_column("outbox", "batch_size")
    op.add_column("members", sa.Column("last_active_at", UTCDateTime(), nullable=True))
    op.create_index(op.f("ix_members_last_active_at"), "members", ["last_active_at"], unique=False)
    op.execute(
        "UPDATE members SET last_active_at = member_activity.last_active_at"
        " FROM member_activity WHERE member_activity.member_id = members.id"
    )
    op.drop_table("member_activity")
    op.create_foreign_key(op.f("fk_activities_member_id_members"), "activities", "members", ["member_id"], ["id"])
    op.create_foreign_key(
        op.f("fk_activities_community_id_communities"), "activities", "communities", ["community_id"], ["id"]
    )
    op.create_index(
        "ix_activities_community_id_occurred_at", "activities", ["community_id", "occurred_at"], unique=False
    )
