"""accounts fillfactor: room on each page for the next version of an account, so the
updates of every redemption and award stay HOT

Each redemption (and each award) rewrites the member's `accounts` row: balance, last_seq,
updated_at, none of them indexed, so Postgres may put the new version beside the old one
on the same page (a HOT update: no new primary-key entry). At the default fillfactor (100)
the pages are full, and about half of the updates went to another page with a new index
entry (and the index later spent its inserts deleting the dead entries bottom-up). At 80
each page keeps room for a few versions, and pruning the page reclaims the old ones.

Only pages written from now on keep the room; `VACUUM FULL` (or pg_repack) rewrites the
existing ones, which a large installation may schedule on its own.

Revision ID: 3f6b8d1e2a47
Revises: 588bba8cd86a
Create Date: 2026-11-29 19:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "3f6b8d1e2a47"
down_revision: str | None = "588bba8cd86a"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("ALTER TABLE accounts SET (fillfactor = 80)")


def downgrade() -> None:
    op.execute("ALTER TABLE accounts RESET (fillfactor)")
