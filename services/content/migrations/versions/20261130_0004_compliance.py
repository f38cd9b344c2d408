"""compliance: forbidden-term lists per community; compliance flags and the override on posts

Revision ID: 6c1f2a9d4e70
Revises: 0335338e5e50
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.common.db import UTCDateTime

revision: str = "6c1f2a9d4e70"
down_revision: str | None = "0335338e5e50"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "forbidden_term_lists",
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("terms", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("jsonb_typeof(terms) = 'array'", name=op.f("ck_forbidden_term_lists_terms_array")),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_forbidden_term_lists")),
    )
    op.add_column("posts", sa.Column("compliance_flags", postgresql.JSONB(astext_type=sa.Text()), nullable=True))
    op.add_column("posts", sa.Column("compliance_checked_at", UTCDateTime(), nullable=True))
    op.add_column("posts", sa.Column("override_by", sa.Uuid(), nullable=True))
    op.add_column("posts", sa.Column("override_at", UTCDateTime(), nullable=True))
    op.create_check_constraint(
        op.f("ck_posts_override_both_or_none"), "posts", "(override_by IS NULL) = (override_at IS NULL)"
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_posts_override_both_or_none"), "posts", type_="check")
    op.drop_column("posts", "override_at")
    op.drop_column("posts", "override_by")
    op.drop_column("posts", "compliance_checked_at")
    op.drop_column("posts", "compliance_flags")
    op.drop_table("forbidden_term_lists")
