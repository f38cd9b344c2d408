"""posts: an index for the calendar of one status in a community

Revision ID: 4d7a0c5e9f12
Revises: 9b2e41c7d3a8
Create Date: 2026-12-01 10:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4d7a0c5e9f12"
down_revision: str | None = "9b2e41c7d3a8"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        op.f("ix_posts_community_id_status_calendar_at_id"),
        "posts",
        ["community_id", "status", "calendar_at", "id"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index(op.f("ix_posts_community_id_status_calendar_at_id"), table_name="posts")
