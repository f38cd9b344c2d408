"""The members service's tables live on this metadata; its migrations track it."""

import sqlalchemy as sa
from sqlalchemy.orm import registry
from sqlmodel import SQLModel

from services.common.db import new_metadata
from services.common.events import define_kit_tables

metadata = new_metadata()


# A class statement (not `model_base(metadata)`) so mypy accepts it as a base class.
class MembersModel(SQLModel, registry=registry(metadata=metadata)):
    pass


kit_tables = define_kit_tables(metadata)


def table_of(model: type[SQLModel]) -> sa.Table:
    """The Core table behind a model, for set-based statements (SQLModel leaves it untyped)."""
    table = model.__table__  # type: ignore[attr-defined]
    assert isinstance(table, sa.Table)
    return table
