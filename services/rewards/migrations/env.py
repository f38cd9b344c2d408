"""Alembic environment of the rewards service (own version table: alembic_version_rewards)."""

from services.common.migrations import run_migrations
from services.rewards.models_registry import metadata

run_migrations(metadata)
