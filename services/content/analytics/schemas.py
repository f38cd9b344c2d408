"""Content analytics over HTTP: what was published in a window, and what waits to be."""

from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class ContentAnalytics(BaseModel):
    model_config = ConfigDict(validate_by_name=True, validate_by_alias=True)

    from_: datetime = Field(alias="from", serialization_alias="from")
    to: datetime
    community_id: uuid.UUID | None
    published: int = Field(description="Posts published in `[from, to)`")
    published_by_kind: dict[str, int] = Field(description="The same, by post kind (kinds with none left out)")
    scheduled: int = Field(description="Posts waiting to be published now (the queue, whatever the window)")
