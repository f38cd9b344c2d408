"""gateway: member_erasures, each service's confirmation of a member's erasure

Revision ID: 4b7d2e9a1c63
Revises: 8e3f1b6c2d57
Create Date: 2026-11-29 15:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "4b7d2e9a1c63"
down_revision: str | None = "8e3f1b6c2d57"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_erasures",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("service", sa.String(length=16), nullable=False),
        sa.Column("erased_at", UTCDateTime(), nullable=False),
        sa.Column("event_id", sa.Uuid(), nullable=False),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint(
            "service IN ('members', 'content', 'rewards', 'feedback')", name=op.f("ck_member_erasures_service_known")
        ),
        sa.PrimaryKeyConstraint("member_id", "service", name=op.f("pk_member_erasures")),
    )


def downgrade() -> None:
    op.drop_table("member_erasures")
