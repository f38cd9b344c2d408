"""webhook leases: a sending delivery's lease in `lease_until`, not in `next_attempt_at`

Revision ID: 5b1e0c7d9a44
Revises: 3cf7e603924d
Create Date: 2026-11-22 09:30:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from services.common.db import UTCDateTime

revision: str = "5b1e0c7d9a44"
down_revision: str | None = "3cf7e603924d"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("webhook_deliveries", sa.Column("lease_until", UTCDateTime(), nullable=True))
    # A sending row's next_attempt_at was its lease expiry; it stays due from then on.
    op.execute("UPDATE webhook_deliveries SET lease_until = next_attempt_at WHERE status = 'sending'")


def downgrade() -> None:
    op.execute("UPDATE webhook_deliveries SET next_attempt_at = lease_until WHERE status = 'sending'")
    op.drop_column("webhook_deliveries", "lease_until")
