"""Imports every table module of the members service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.members.activity import models as activity_models
from services.members.communities import models as community_models
from services.members.db import metadata
from services.members.memberships import models as membership_models
from services.members.profiles import models as profile_models
from services.members.segments import models as segment_models

__all__ = [
    "activity_models",
    "community_models",
    "membership_models",
    "metadata",
    "profile_models",
    "segment_models",
]
