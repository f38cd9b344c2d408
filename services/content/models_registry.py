"""Imports every table module of the content service, so its metadata is complete
(migrations and tests import this, not the modules one by one)."""

from services.content.communities import models as communities  # noqa: F401
from services.content.compliance import models as compliance  # noqa: F401
from services.content.contact import models as contact  # noqa: F401
from services.content.db import metadata
from services.content.policy import models as policy  # noqa: F401
from services.content.polls import models as polls  # noqa: F401
from services.content.posts import models as posts  # noqa: F401

__all__ = ["metadata"]
