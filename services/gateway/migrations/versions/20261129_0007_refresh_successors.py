"""gateway auth: refresh tokens remember their successor (reuse grace)

Revision ID: 8e3f1b6c2d57
Revises: 5d0c7e2a9b41
Create Date: 2026-11-29 11:40:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "8e3f1b6c2d57"
down_revision: str | None = "5d0c7e2a9b41"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("refresh_tokens", sa.Column("successor_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("refresh_tokens", "successor_id")
