"""feedback domain: tickets, comments, ratings, agents, support settings, SLA policies,
business hours, suggestions, votes and members' levels

Revision ID: cafd17debbc4
Revises: bd44fdefca45
Create Date: 2026-11-23 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

from services.common.db import UTCDateTime

revision: str = "cafd17debbc4"
down_revision: str | None = "bd44fdefca45"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "agents",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("disabled", sa.Boolean(), nullable=False),
        sa.Column("first_seen_at", UTCDateTime(), nullable=False),
        sa.Column("last_assigned_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_agents")),
    )
    op.create_table(
        "business_hours",
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("days", postgresql.ARRAY(sa.SmallInteger()), nullable=False),
        sa.Column("start", sa.Time(), nullable=False),
        sa.Column("end", sa.Time(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("community_id", name=op.f("pk_business_hours")),
    )
    op.create_table(
        "member_levels",
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("level", sa.String(length=50), nullable=False),
        sa.Column("rank", sa.Integer(), nullable=False),
        sa.Column("changed_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("member_id", name=op.f("pk_member_levels")),
    )
    op.create_table(
        "sla_policies",
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("first_response_minutes", sa.Integer(), nullable=False),
        sa.Column("resolution_minutes", sa.Integer(), nullable=False),
        sa.Column("business_hours_only", sa.Boolean(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("priority", name=op.f("pk_sla_policies")),
    )
    op.create_table(
        "suggestions",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("title", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("response", sa.Text(), nullable=True),
        sa.Column("votes", sa.Integer(), nullable=False),
        sa.Column("score", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("completed_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "status IN ('open', 'planned', 'in_progress', 'done', 'declined')", name=op.f("ck_suggestions_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suggestions")),
    )
    op.create_index("ix_suggestions_member", "suggestions", ["member_id"], unique=False)
    op.create_index("ix_suggestions_new", "suggestions", ["community_id", "created_at", "id"], unique=False)
    op.create_index("ix_suggestions_top", "suggestions", ["community_id", "score", "id"], unique=False)
    op.create_table(
        "support_settings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("reopen_window_days", sa.Integer(), nullable=False),
        sa.Column("assignment", sa.String(length=16), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_settings")),
    )
    op.create_table(
        "tickets",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("community_id", sa.Uuid(), nullable=True),
        sa.Column("subject", sa.String(length=200), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("category", sa.String(length=16), nullable=False),
        sa.Column("priority", sa.String(length=16), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("tags", postgresql.ARRAY(sa.String(length=64)), nullable=False),
        sa.Column("assignee_id", sa.Uuid(), nullable=True),
        sa.Column("created_by", sa.String(length=200), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("first_response_at", UTCDateTime(), nullable=True),
        sa.Column("resolved_at", UTCDateTime(), nullable=True),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("reopened_at", UTCDateTime(), nullable=True),
        sa.Column("first_response_minutes", sa.Integer(), nullable=True),
        sa.Column("resolution_minutes", sa.Integer(), nullable=True),
        sa.Column("business_hours_only", sa.Boolean(), nullable=False),
        sa.Column("first_response_due_at", UTCDateTime(), nullable=False),
        sa.Column("resolution_due_at", UTCDateTime(), nullable=False),
        sa.Column("first_response_breach_due_at", UTCDateTime(), nullable=True),
        sa.Column("resolution_breach_due_at", UTCDateTime(), nullable=True),
        sa.Column("breached", sa.Boolean(), nullable=False),
        sa.Column("breached_assignee_id", sa.Uuid(), nullable=True),
        sa.Column("csat_requested_at", UTCDateTime(), nullable=True),
        sa.Column("member_erased_at", UTCDateTime(), nullable=True),
        sa.CheckConstraint(
            "category IN ('question', 'bug', 'suggestion', 'complaint', 'appeal')", name=op.f("ck_tickets_category")
        ),
        sa.CheckConstraint("priority IN ('low', 'normal', 'high', 'urgent')", name=op.f("ck_tickets_priority")),
        sa.CheckConstraint(
            "status IN ('new', 'open', 'pending', 'resolved', 'closed')", name=op.f("ck_tickets_status")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_tickets")),
    )
    op.create_index("ix_tickets_assignee_created", "tickets", ["assignee_id", "created_at", "id"], unique=False)
    op.create_index("ix_tickets_created", "tickets", ["created_at", "id"], unique=False)
    op.create_index(
        "ix_tickets_first_response_due",
        "tickets",
        ["first_response_due_at"],
        unique=False,
        postgresql_where=sa.text("first_response_at IS NULL AND status IN ('new', 'open', 'pending')"),
    )
    op.create_index("ix_tickets_member_created", "tickets", ["member_id", "created_at", "id"], unique=False)
    op.create_index(
        "ix_tickets_resolution_due",
        "tickets",
        ["resolution_due_at"],
        unique=False,
        postgresql_where=sa.text("status IN ('new', 'open', 'pending')"),
    )
    op.create_index("ix_tickets_status_created", "tickets", ["status", "created_at", "id"], unique=False)
    op.create_table(
        "suggestion_votes",
        sa.Column("suggestion_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("weight", sa.Integer(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["suggestion_id"],
            ["suggestions.id"],
            name=op.f("fk_suggestion_votes_suggestion_id_suggestions"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("suggestion_id", "member_id", name=op.f("pk_suggestion_votes")),
    )
    op.create_index("ix_suggestion_votes_member", "suggestion_votes", ["member_id"], unique=False)
    op.create_table(
        "ticket_comments",
        sa.Column("id", sa.Uuid(), nullable=False),
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("author_kind", sa.String(length=16), nullable=False),
        sa.Column("author_id", sa.String(length=200), nullable=False),
        sa.Column("internal", sa.Boolean(), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.CheckConstraint("author_kind IN ('member', 'agent')", name=op.f("ck_ticket_comments_author_kind")),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_comments_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ticket_comments")),
    )
    op.create_index("ix_ticket_comments_author", "ticket_comments", ["author_id"], unique=False)
    op.create_index("ix_ticket_comments_thread", "ticket_comments", ["ticket_id", "created_at", "id"], unique=False)
    op.create_table(
        "ticket_ratings",
        sa.Column("ticket_id", sa.Uuid(), nullable=False),
        sa.Column("member_id", sa.Uuid(), nullable=False),
        sa.Column("rating", sa.Integer(), nullable=False),
        sa.Column("comment", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["ticket_id"], ["tickets.id"], name=op.f("fk_ticket_ratings_ticket_id_tickets"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("ticket_id", name=op.f("pk_ticket_ratings")),
    )
    op.create_index(op.f("ix_ticket_ratings_member_id"), "ticket_ratings", ["member_id"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_ticket_ratings_member_id"), table_name="ticket_ratings")
    op.drop_table("ticket_ratings")
    op.drop_index("ix_ticket_comments_thread", table_name="ticket_comments")
    op.drop_index("ix_ticket_comments_author", table_name="ticket_comments")
    op.drop_table("ticket_comments")
    op.drop_index("ix_suggestion_votes_member", table_name="suggestion_votes")
    op.drop_table("suggestion_votes")
    op.drop_index("ix_tickets_status_created", table_name="tickets")
    op.drop_index(
        "ix_tickets_resolution_due",
        table_name="tickets",
        postgresql_where=sa.text("status IN ('new', 'open', 'pending')"),
    )
    op.drop_index("ix_tickets_member_created", table_name="tickets")
    op.drop_index(
        "ix_tickets_first_response_due",
        table_name="tickets",
        postgresql_where=sa.text("first_response_at IS NULL AND status IN ('new', 'open', 'pending')"),
    )
    op.drop_index("ix_tickets_created", table_name="tickets")
    op.drop_index("ix_tickets_assignee_created", table_name="tickets")
    op.drop_table("tickets")
    op.drop_table("support_settings")
    op.drop_index("ix_suggestions_top", table_name="suggestions")
    op.drop_index("ix_suggestions_new", table_name="suggestions")
    op.drop_index("ix_suggestions_member", table_name="suggestions")
    op.drop_table("suggestions")
    op.drop_table("sla_policies")
    op.drop_table("member_levels")
    op.drop_table("business_hours")
    op.drop_table("agents")
