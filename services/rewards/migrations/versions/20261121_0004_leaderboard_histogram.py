"""leaderboard histogram: members per points value per board; the ranking index in board order

Revision ID: 2e37ee3dc64d
Revises: feddb68e15ed
Create Date: 2026-11-21 12:36:47.170439
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "2e37ee3dc64d"
down_revision: str | None = "feddb68e15ed"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BACKFILL = """
INSERT INTO period_points_counts (community_id, period, period_start, points, members)
SELECT community_id, period, period_start, points, count(*)
FROM period_points
WHERE points > 0
GROUP BY community_id, period, period_start, points
"""


def upgrade() -> None:
    op.create_table(
        "period_points_counts",
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("period", sa.String(length=8), nullable=False),
        sa.Column("period_start", sa.Date(), nullable=False),
        sa.Column("points", sa.Integer(), nullable=False),
        sa.Column("members", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint(
            "community_id", "period", "period_start", "points", name=op.f("pk_period_points_counts")
        ),
    )
    op.execute(BACKFILL)
    # Points descending in the index, so the top N (points desc, reached_at, member_id) is an index scan.
    op.drop_index(op.f("ix_period_points_ranking"), table_name="period_points")
    op.create_index(
        "ix_period_points_ranking",
        "period_points",
        ["community_id", "period", "period_start", sa.literal_column("points DESC"), "reached_at", "member_id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_period_points_ranking", table_name="period_points")
    op.create_index(
        op.f("ix_period_points_ranking"),
        "period_points",
        ["community_id", "period", "period_start", "points", "reached_at", "member_id"],
        unique=False,
    )
    op.drop_table("period_points_counts")
