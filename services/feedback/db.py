"""The feedback service's tables live on this metadata; its migrations track it."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from services.common.db import new_metadata
from services.common.events import define_kit_tables

metadata = new_metadata()
kit_tables = define_kit_tables(metadata)


class FeedbackModel(SQLModel, registry=registry(metadata=metadata)):
    """Base of every feedback table: its own metadata, so tables never leak across services."""
