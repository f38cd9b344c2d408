"""moderation: memberships, community rules, sanction ladders, reports and their filings,
strikes, sanctions, and the sanction an appeal ticket names

Revision ID: c996cfc75d20
Revises: 5c3e9a1f7d20
Create Date: 2026-11-30 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.common.db import UTCDateTime

revision: str = "c996cfc75d20"
down_revision: str | None = "5c3e9a1f7d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "community_memberships",
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("joined_at", UTCDateTime(), nullable=False),
        sa.Column("left_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("community_id", "member_id", name=op.f("pk_community_memberships")),
    )
    op.create_index(op.f("ix_community_memberships_member_id"), "community_memberships", ["member_id"], unique=False)
    op.create_table(
        "community_rules",
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("items", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_by", sa.String(length=200), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_community_rules")),
    )
    op.create_table(
        "reports",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("reported_member_id", sa.Uuid(), nullable=False),
        sa.Column("message_id", sa.String(length=200), nullable=True),
        sa.Column("rule_code", sa.String(length=64), nullable=True),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reporter_count", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_by", sa.String(length=200), nullable=True),
        sa.Column("resolution_note", sa.Text(), nullable=True),
        sa.Column("sanction_id", sa.Uuid(), nullable=True),
        sa.Column("strike_id", sa.Uuid(), nullable=True),
        sa.CheckConstraint("status IN ('open', 'dismissed', 'upheld')", name=op.f("ck_reports_status")),
        sa.CheckConstraint("reporter_count >= 1", name=op.f("ck_reports_reporter_count")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reports")),
        sa.UniqueConstraint("community_id", "message_id", name=op.f("uq_reports_community_id_message_id")),
    )
    op.create_index(
        "ix_reports_community_queue", "reports", ["community_id", "status", "created_at", "id"], unique=False
    )
    op.create_index("ix_reports_queue", "reports", ["status", "created_at", "id"], unique=False)
    op.create_index("ix_reports_reported", "reports", ["reported_member_id"], unique=False)
    op.create_table(
        "sanction_ladders",
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("strike_ttl_days", sa.Integer(), nullable=False),
        sa.Column("steps", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_sanction_ladders")),
    )
    op.create_table(
        "sanctions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("action", sa.String(length=8), nullable=False),
        sa.Column("rule_code", sa.String(length=64), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("report_id", sa.Uuid(), nullable=True),
        sa.Column("strike_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("until", UTCDateTime(), nullable=True),
        sa.Column("status", sa.String(length=8), nullable=False),
        sa.Column("ended_at", UTCDateTime(), nullable=True),
        sa.Column("end_reason", sa.String(length=8), nullable=True),
        sa.Column("ended_by", sa.String(length=200), nullable=True),
        sa.CheckConstraint("action IN ('warn', 'mute', 'ban')", name=op.f("ck_sanctions_action")),
        sa.CheckConstraint(
            "end_reason IS NULL OR end_reason IN ('expired', 'lifted', 'appeal')", name=op.f("ck_sanctions_end_reason")
        ),
        sa.CheckConstraint("status IN ('issued', 'active', 'expired', 'lifted')", name=op.f("ck_sanctions_status")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_sanctions")),
    )
    op.create_index(
        "ix_sanctions_due",
        "sanctions",
        ["until"],
        unique=False,
        postgresql_where=sa.text("status = 'active' AND until IS NOT NULL"),
    )
    op.create_index("ix_sanctions_member", "sanctions", ["member_id", "community_id", "created_at"], unique=False)
    op.create_table(
        "strikes",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("report_id", sa.Uuid(), nullable=True),
        sa.Column("rule_code", sa.String(length=64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("expires_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_strikes")),
    )
    op.create_index("ix_strikes_member", "strikes", ["member_id", "community_id", "expires_at"], unique=False)
    op.create_table(
        "report_filings",
        sa.Column("report_id", sa.Uuid(), nullable=False),
        sa.Column("reporter_id", sa.String(length=200), nullable=False),
        sa.Column("reporter_member_id", sa.Uuid(), nullable=True),
        sa.Column("filed_by", sa.String(length=200), nullable=False),
        sa.Column("evidence", postgresql.JSONB(astext_type=sa.Text()), nullable=False),
        sa.Column("note", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["report_id"], ["reports.id"], name=op.f("fk_report_filings_report_id_reports"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("report_id", "reporter_id", name=op.f("pk_report_filings")),
    )
    op.create_index("ix_report_filings_member", "report_filings", ["reporter_member_id"], unique=False)
    op.add_column("tickets", sa.Column("sanction_id", sa.Uuid(), nullable=True))


def downgrade() -> None:
    op.drop_column("tickets", "sanction_id")
    op.drop_index("ix_report_filings_member", table_name="report_filings")
    op.drop_table("report_filings")
    op.drop_index("ix_strikes_member", table_name="strikes")
    op.drop_table("strikes")
    op.drop_index("ix_sanctions_member", table_name="sanctions")
    op.drop_index(
        "ix_sanctions_due", table_name="sanctions", postgresql_where=sa.text("status = 'active' AND until IS NOT NULL")
    )
    op.drop_table("sanctions")
    op.drop_table("sanction_ladders")
    op.drop_index("ix_reports_reported", table_name="reports")
    op.drop_index("ix_reports_queue", table_name="reports")
    op.drop_index("ix_reports_community_queue", table_name="reports")
    op.drop_table("reports")
    op.drop_table("community_rules")
    op.drop_index(op.f("ix_community_memberships_member_id"), table_name="community_memberships")
    op.drop_table("community_memberships")
