"""support config version: one number that changes with every write to the support settings,
SLA policies or business hours (statement triggers), so a process may cache them and check
in its ticket INSERT that they have not changed since

Revision ID: 7d41b2e9c306
Revises: c996cfc75d20
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "7d41b2e9c306"
down_revision: str | None = "c996cfc75d20"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

CONFIG_TABLES = ("support_settings", "sla_policies", "business_hours")


def upgrade() -> None:
    op.create_table(
        "support_config_version",
        sa.Column("id", sa.SmallInteger(), nullable=False),
        sa.Column("version", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_support_config_version")),
    )
    # A sequence of its own: a TRUNCATE ... RESTART IDENTITY of the tables never reuses a
    # number a process may still have cached.
    op.execute("CREATE SEQUENCE support_config_version_seq")
    op.execute(
        """
        CREATE FUNCTION bump_support_config_version() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            INSERT INTO support_config_version (id, version)
            VALUES (1, nextval('support_config_version_seq'))
            ON CONFLICT (id) DO UPDATE SET version = EXCLUDED.version;
            RETURN NULL;
        END $$
        """
    )
    for table in CONFIG_TABLES:
        op.execute(
            f"CREATE TRIGGER {table}_bump_config_version AFTER INSERT OR UPDATE OR DELETE OR TRUNCATE "
            f"ON {table} FOR EACH STATEMENT EXECUTE FUNCTION bump_support_config_version()"
        )


def downgrade() -> None:
    for table in CONFIG_TABLES:
        op.execute(f"DROP TRIGGER {table}_bump_config_version ON {table}")
    op.execute("DROP FUNCTION bump_support_config_version()")
    op.execute("DROP SEQUENCE support_config_version_seq")
    op.drop_table("support_config_version")
