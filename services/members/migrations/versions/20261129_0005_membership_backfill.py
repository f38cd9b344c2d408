"""membership backfill: `member.joined_community` again for every current membership, to
content and feedback only

Content (poll voters) and feedback (the suggestion board, rules, reports, sanctions) keep
their own copy of who belongs to which community, learnt from `member.joined_community`.
Subscribers are fixed when an event is written, so memberships made before they subscribed
never reached them, and those members would be refused as non-members. This sends each
current membership to those two again, as new events (their inboxes have not seen the
ids), through the outbox as usual. Both apply a join as an upsert that keeps the later
`joined_at`, so a membership they already knew is unchanged. Partners' webhooks (the
gateway) are not sent these: they are not news.

Revision ID: 4b8d2e6f9a13
Revises: 9c2e4f1a7b30
Create Date: 2026-11-29 18:10:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "4b8d2e6f9a13"
down_revision: str | None = "9c2e4f1a7b30"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute(
        """
        WITH events AS (
            INSERT INTO outbox (id, type, occurred_at, data)
            SELECT gen_random_uuid(), 'member.joined_community', m.joined_at,
                json_build_object(
                    'member_id', m.member_id,
                    'community_id', m.community_id,
                    'joined_at', to_char(m.joined_at AT TIME ZONE 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
                )
            FROM memberships m JOIN members ON members.id = m.member_id
            WHERE m.left_at IS NULL AND members.erased_at IS NULL
            ORDER BY m.joined_at
            RETURNING id
        )
        INSERT INTO outbox_pending (subscriber, event_id, status, attempts, next_attempt_at)
        SELECT subscriber, events.id, 'pending', 0, now()
        FROM events CROSS JOIN unnest(ARRAY['content', 'feedback']) AS subscriber
        """
    )


def downgrade() -> None:
    pass  # events sent are facts; nothing to take back
