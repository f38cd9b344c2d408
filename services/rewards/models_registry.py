"""Imports every table module of the rewards service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.rewards.badges import models as badges_models
from services.rewards.catalog import models as catalog_models
from services.rewards.db import metadata
from services.rewards.earning import models as earning_models
from services.rewards.leaderboards import models as leaderboards_models
from services.rewards.points import models as points_models
from services.rewards.program import models as program_models

__all__ = [
    "badges_models",
    "catalog_models",
    "earning_models",
    "leaderboards_models",
    "metadata",
    "points_models",
    "program_models",
]
