"""contact permits: the grant as one database function (lock, count and insert in one round trip)

Revision ID: 9b2e41c7d3a8
Revises: 6c1f2a9d4e70
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "9b2e41c7d3a8"
down_revision: str | None = "6c1f2a9d4e70"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# The two statements the grant ran from Python, now one call. VOLATILE matters: in READ
# COMMITTED each statement of a volatile function takes a fresh snapshot, so the count runs
# after the budget row lock is held and sees every grant committed before it.
GRANT_PERMIT = """
CREATE FUNCTION content_grant_permit(
    p_id uuid, p_member_id uuid, p_community_id uuid, p_kind text, p_requested_by text,
    p_now timestamptz, p_window interval, p_weekly_max integer, p_weekly_max_promotions integer
) RETURNS TABLE (total bigint, promotions bigint, oldest timestamptz, oldest_promotion timestamptz,
                 granted boolean)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
BEGIN
    -- Create the member's budget row or lock it (DO UPDATE takes the row lock, waiting for a
    -- concurrent grant's transaction or for the one inserting the row).
    INSERT INTO contact_budgets AS b (member_id, created_at) VALUES (p_member_id, p_now)
    ON CONFLICT (member_id) DO UPDATE SET created_at = b.created_at;
    RETURN QUERY
    WITH used AS (
        SELECT count(*) AS total,
               count(*) FILTER (WHERE kind = 'promotion') AS promotions,
               min(granted_at) AS oldest,
               min(granted_at) FILTER (WHERE kind = 'promotion') AS oldest_promotion
        FROM contact_permits
        WHERE member_id = p_member_id AND granted_at > p_now - p_window
    ), written AS (
        INSERT INTO contact_permits (id, member_id, community_id, kind, requested_by, granted_at)
        SELECT p_id, p_member_id, p_community_id, p_kind, p_requested_by, p_now
        FROM used
        WHERE used.total < p_weekly_max
          AND (p_kind <> 'promotion' OR used.promotions < p_weekly_max_promotions)
        RETURNING id
    )
    SELECT used.total, used.promotions, used.oldest, used.oldest_promotion,
           EXISTS (SELECT 1 FROM written)
    FROM used;
END
$$
"""


def upgrade() -> None:
    op.execute(GRANT_PERMIT)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION content_grant_permit(uuid, uuid, uuid, text, text, timestamptz, interval, integer, integer)"
    )
