"""The rewards service's tables live on this metadata; its migrations track it."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from services.common.db import new_metadata
from services.common.events import define_kit_tables

metadata = new_metadata()
# Batch outbox rows: an earning batch writes its `rewards.points_awarded` events as one row.
kit_tables = define_kit_tables(metadata, batches=True)


class RewardsModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of every rewards table : its own metadata, so tables never leak across services."""
