"""reward stock buckets: a reward's units left live in `reward_stock` rows, not one hot column

Revision ID: feddb68e15ed
Revises: de7b4eb60e75
Create Date: 2026-11-21 12:13:40.987230
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "feddb68e15ed"
down_revision: str | None = "de7b4eb60e75"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BUCKETS = 16  # services.rewards.catalog.service.STOCK_BUCKETS when this revision was written


def upgrade() -> None:
    stock = op.create_table(
        "reward_stock",
        sa.Column("reward_id", sa.Uuid(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("remaining", sa.Integer(), nullable=False),
        sa.CheckConstraint("remaining >= 0", name=op.f("ck_reward_stock_remaining_not_negative")),
        sa.ForeignKeyConstraint(
            ["reward_id"], ["rewards.id"], name=op.f("fk_reward_stock_reward_id_rewards"), ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("reward_id", "bucket", name=op.f("pk_reward_stock")),
    )
    rewards = sa.table("rewards", sa.column("id", sa.Uuid()), sa.column("stock", sa.Integer()))
    limited = op.get_bind().execute(sa.select(rewards.c.id, rewards.c.stock).where(rewards.c.stock.is_not(None)))
    rows = [
        {"reward_id": reward_id, "bucket": bucket, "remaining": units // BUCKETS + (bucket < units % BUCKETS)}
        for reward_id, units in limited
        for bucket in range(BUCKETS)
    ]
    if rows:
        op.bulk_insert(stock, rows)
    op.drop_constraint(op.f("ck_rewards_stock_not_negative"), "rewards", type_="check")
    op.drop_column("rewards", "stock")


def downgrade() -> None:
    op.add_column("rewards", sa.Column("stock", sa.Integer(), nullable=True))
    op.create_check_constraint(op.f("ck_rewards_stock_not_negative"), "rewards", "stock IS NULL OR stock >= 0")
    stock = sa.table("reward_stock", sa.column("reward_id", sa.Uuid()), sa.column("remaining", sa.Integer()))
    rewards = sa.table("rewards", sa.column("id", sa.Uuid()), sa.column("stock", sa.Integer()))
    units = sa.select(sa.func.sum(stock.c.remaining)).where(stock.c.reward_id == rewards.c.id).scalar_subquery()
    op.execute(rewards.update().values(stock=units))
    op.drop_table("reward_stock")
