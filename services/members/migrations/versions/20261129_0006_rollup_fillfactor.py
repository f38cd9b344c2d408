"""rollup fillfactor: room on each page of the tables ingest updates, so updates stay HOT

Every batch updates each active member's `member_activity` row and its `activity_daily`
row (and a few `activity_hourly` rows). None of those updates changes an indexed column,
so Postgres could write the new version beside the old one on the same page (a HOT
update: no new index entry). But at the default fillfactor (100) the pages are full: each
new version went to another page, with a new primary-key entry, and the index then spent
its inserts deleting the dead entries bottom-up. At 50 the page keeps room for the next
version, and pruning the page reclaims the old one: in members_ingest, three updates in
four stay HOT and Postgres spends about 24 us per event instead of 34-44. (At 25, fourteen
in fifteen stay HOT but the CPU is no lower, and the rollups would take twice the pages.)

Only pages written from now on keep the room; `VACUUM FULL` (or pg_repack) rewrites the
existing ones, which a large installation may schedule on its own.

Revision ID: 7e1a9c3d5b24
Revises: 4b8d2e6f9a13
Create Date: 2026-11-29 19:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "7e1a9c3d5b24"
down_revision: str | None = "4b8d2e6f9a13"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

UPDATED_BY_INGEST = ("member_activity", "activity_daily", "activity_hourly")


def upgrade() -> None:
    for table in UPDATED_BY_INGEST:
        op.execute(f"ALTER TABLE {table} SET (fillfactor = 50)")


def downgrade() -> None:
    for table in UPDATED_BY_INGEST:
        op.execute(f"ALTER TABLE {table} RESET (fillfactor)")
