"""gateway auth: member token versions

Revision ID: 5d0c7e2a9b41
Revises: 5b1e0c7d9a44
Create Date: 2026-11-29 11:20:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "5d0c7e2a9b41"
down_revision: str | None = "5b1e0c7d9a44"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "member_token_versions",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_token_versions")),
    )


def downgrade() -> None:
    op.drop_table("member_token_versions")
