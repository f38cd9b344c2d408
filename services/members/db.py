"""The members service's tables live on this metadata; its migrations track it."""

from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from services.common.db import new_metadata
from services.common.events import define_kit_tables

metadata = new_metadata()


class MembersModel(SQLModel, registry=registry(metadata=metadata)):
    pass


# Batch ingest writes one outbox row per batch of `activity.recorded` (see activity.service).
kit_tables = define_kit_tables(metadata, batches=True)
