"""The activity HTTP contract: single events, batches and their per-item answers."""

from __future__ import annotations

import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Annotated, Any, NotRequired

from pydantic import (
    AwareDatetime,
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    TypeAdapter,
    field_validator,
    model_validator,
    with_config,
)
from typing_extensions import TypedDict

from services.common.problems import Problem
from services.members.validation import ExternalId, Properties, check_properties

MAX_BATCH = 1000
# Clocks drift: a little future is tolerated, more is a client bug.
MAX_CLOCK_SKEW = timedelta(minutes=5)
EARLIEST = datetime(2000, 1, 1, tzinfo=UTC)

KNOWN_TYPES = (
    "check_in",
    "message_sent",
    "post_liked",
    "content_shared",
    "invite_accepted",
    "event_attended",
    "poll_voted",
)

ActivityType = Annotated[
    str,
    StringConstraints(pattern=r"^[A-Za-z][A-Za-z0-9_.:-]{0,63}$"),
    Field(
        description=f"Known out of the box: {', '.join(KNOWN_TYPES)}; other types are recorded too",
        examples=["check_in"],
    ),
]


class ActivityCreate(BaseModel):
    """One activity. Give `member_id` or `external_id` (a member token may give neither)."""

    model_config = ConfigDict(extra="forbid")

    id: uuid.UUID | None = Field(default=None, description="Your id for this event: a repeat is recorded once")
    member_id: uuid.UUID | None = None
    external_id: ExternalId | None = None
    community_id: uuid.UUID
    type: ActivityType
    occurred_at: AwareDatetime | None = Field(default=None, description="When it happened (default: now)")
    properties: Properties = Field(default_factory=dict, description="Free-form details, at most 8 KB of JSON")

    @field_validator("occurred_at")
    @classmethod
    def _plausible_time(cls, value: datetime | None) -> datetime | None:
        if value is None:
            return None
        check_plausible_time(value, time.time())
        return value

    @model_validator(mode="after")
    def _one_member_reference(self) -> ActivityCreate:
        if self.member_id is not None and self.external_id is not None:
            raise ValueError("give member_id or external_id, not both")
        return self


def check_plausible_time(value: datetime, now: float) -> None:
    """Refuse a time in the future (beyond the clock skew) or before 2000. `now` in seconds
    since the epoch: the same comparison as with `utcnow()`, without building two
    datetimes per event (a batch has a thousand)."""
    if value.timestamp() > now + MAX_CLOCK_SKEW.total_seconds():
        raise ValueError("must not be in the future")
    if value < EARLIEST:
        raise ValueError("must be after 2000-01-01")


@with_config(ConfigDict(extra="forbid"))
class ActivityInput(TypedDict):
    """`ActivityCreate`'s fields as a plain dict: what the service records.

    Batch ingest parses a body into these (`ACTIVITY_BATCH`), a thousand at a time, without
    a model instance each. The field types are `ActivityCreate`'s; its own validators
    (the time's range, the properties' size, one member reference) are checked by
    `passes_model_checks`. A missing key is the model's default."""

    id: NotRequired[uuid.UUID | None]
    member_id: NotRequired[uuid.UUID | None]
    external_id: NotRequired[ExternalId | None]
    community_id: uuid.UUID
    type: ActivityType
    occurred_at: NotRequired[AwareDatetime | None]
    properties: NotRequired[dict[str, Any]]


@with_config(ConfigDict(extra="forbid"))
class ActivityBatchInput(TypedDict):
    events: Annotated[list[ActivityInput], Field(min_length=1, max_length=MAX_BATCH)]


# A batch body parsed straight from its bytes: the fast path of batch ingest.
ACTIVITY_BATCH: TypeAdapter[ActivityBatchInput] = TypeAdapter(ActivityBatchInput)


def passes_model_checks(events: list[ActivityInput]) -> bool:
    """Whether every event also passes `ActivityCreate`'s own validators, so that the model
    would accept each one as parsed. When one fails, the caller validates with the model,
    which says what is wrong."""
    times = []
    for event in events:
        occurred_at = event.get("occurred_at")
        if occurred_at is not None:
            times.append(occurred_at)
        properties = event.get("properties")
        if properties is not None:
            try:
                check_properties(properties)
            except ValueError:
                return False
        if event.get("member_id") is not None and event.get("external_id") is not None:
            return False
    if times:
        # Every time is in range if the latest and the earliest are (compared in C).
        try:
            check_plausible_time(max(times), time.time())
            check_plausible_time(min(times), time.time())
        except ValueError:
            return False
    return True


def activity_input(model: ActivityCreate) -> ActivityInput:
    """A validated model as the service's plain dict."""
    return ActivityInput(
        id=model.id,
        member_id=model.member_id,
        external_id=model.external_id,
        community_id=model.community_id,
        type=model.type,
        occurred_at=model.occurred_at,
        properties=model.properties,
    )


class ActivityAccepted(BaseModel):
    id: uuid.UUID = Field(description="The event's id (yours, or one made for it)")
    duplicate: bool = Field(description="True if this id was recorded before: nothing changed")


class ActivityBatchCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Items are validated one by one, so one bad item does not sink the batch.
    events: list[dict[str, Any]] = Field(
        min_length=1,
        max_length=MAX_BATCH,
        json_schema_extra={"items": {"$ref": "#/components/schemas/ActivityCreate"}},
    )


class RejectedActivity(BaseModel):
    index: int = Field(description="Position of the event in the batch")
    problem: Problem


class ActivityBatchResult(BaseModel):
    accepted: int = Field(description="Events recorded now")
    duplicates: int = Field(description="Events whose id was recorded before")
    rejected: list[RejectedActivity]
