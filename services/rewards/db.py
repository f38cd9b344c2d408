"""The rewards service's tables live on this metadata; its migrations track it."""

from services.common.db import model_base, new_metadata
from services.common.events import define_kit_tables

metadata = new_metadata()
RewardsModel = model_base(metadata)
kit_tables = define_kit_tables(metadata)
