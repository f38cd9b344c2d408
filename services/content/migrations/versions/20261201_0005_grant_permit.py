"""contact permits: the ask as one database function (limits, consent, quiet hours, then lock,
count and insert) in one round trip

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

# What services/content/contact/service.py did in five statements, as one call. The
# defaults come in as arguments (the Python constants stay the one source), and so does the
# community's local time of day (Python knows the zone). VOLATILE matters: in READ COMMITTED
# each statement of a volatile function takes a fresh snapshot, so the count runs after the
# budget row lock is held and sees every grant committed before it.
ASK_PERMIT = """
CREATE FUNCTION content_ask_permit(
    p_id uuid, p_member_id uuid, p_community_id uuid, p_kind text, p_requested_by text,
    p_now timestamptz, p_local time, p_window interval,
    p_default_max integer, p_default_max_promotions integer,
    p_default_quiet_start time, p_default_quiet_end time
) RETURNS TABLE (
    weekly_max integer, weekly_max_promotions integer, quiet_start time, quiet_end time,
    quiet_inherited boolean, is_default boolean, refused text,
    total bigint, promotions bigint, oldest timestamptz, oldest_promotion timestamptz, granted boolean
)
LANGUAGE plpgsql VOLATILE AS $$
#variable_conflict use_column
DECLARE
    v_max integer;
    v_max_promotions integer;
    v_start time;
    v_end time;
    v_inherited boolean := false;
    v_default boolean := false;
BEGIN
    SELECT c.weekly_max, c.weekly_max_promotions, c.quiet_start, c.quiet_end
    INTO v_max, v_max_promotions, v_start, v_end
    FROM contact_policies c WHERE c.community_id = p_community_id;
    IF NOT FOUND THEN
        v_max := p_default_max;
        v_max_promotions := p_default_max_promotions;
        v_default := true;
    END IF;
    IF v_start IS NULL THEN  -- the publishing policy's quiet hours (its defaults without a row)
        v_inherited := true;
        SELECT p.quiet_start, p.quiet_end INTO v_start, v_end
        FROM publishing_policies p WHERE p.community_id = p_community_id;
        IF NOT FOUND THEN
            v_start := p_default_quiet_start;
            v_end := p_default_quiet_end;
        END IF;
    END IF;
    IF p_kind = 'promotion' AND NOT coalesce(
        (SELECT m.marketing FROM member_consents m WHERE m.member_id = p_member_id), false
    ) THEN
        RETURN QUERY SELECT v_max, v_max_promotions, v_start, v_end, v_inherited, v_default, 'no-consent'::text,
            NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz, false;
        RETURN;
    END IF;
    -- QuietHours.contains (services/content/policy/rules.py): [start, end), wrapping midnight.
    IF v_start IS NOT NULL AND (
        (v_start < v_end AND p_local >= v_start AND p_local < v_end)
        OR (v_start > v_end AND (p_local >= v_start OR p_local < v_end))
    ) THEN
        RETURN QUERY SELECT v_max, v_max_promotions, v_start, v_end, v_inherited, v_default, 'quiet-hours'::text,
            NULL::bigint, NULL::bigint, NULL::timestamptz, NULL::timestamptz, false;
        RETURN;
    END IF;
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
        WHERE used.total < v_max
          AND (p_kind <> 'promotion' OR used.promotions < v_max_promotions)
        RETURNING id
    )
    SELECT v_max, v_max_promotions, v_start, v_end, v_inherited, v_default, NULL::text,
           used.total, used.promotions, used.oldest, used.oldest_promotion,
           EXISTS (SELECT 1 FROM written)
    FROM used;
END
$$
"""


def upgrade() -> None:
    op.execute(ASK_PERMIT)


def downgrade() -> None:
    op.execute(
        "DROP FUNCTION content_ask_permit(uuid, uuid, uuid, text, text, timestamptz, time, interval, integer, "
        "integer, time, time)"
    )
