"""Contracts of the content service: the post workflow.

Emitted by the content service through its outbox, as API.md
describes it (`draft -> in_review -> approved | rejected`, `approved -> scheduled ->
published`; every transition emits its `content.post_*` event).
"""

from __future__ import annotations

import uuid
from typing import Literal

from pydantic import ConfigDict, Field, JsonValue

from services.common.contracts.base import EventModel, UtcDatetime, with_example
from services.common.contracts.members import COMMUNITY_ID, MEMBER_ID

PostKind = Literal["announcement", "promotion", "activity", "poll", "tip"]

POST_ID = "4c5d6e7f-8a9b-4c0d-9e1f-2a3b4c5d6e7f"
AUTHOR_ID = "6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d"
REVIEWER_ID = "8b9c0d1e-2f3a-4b4c-9d5e-6f7a8b9c0d1e"


class _PostEvent(EventModel):
    post_id: uuid.UUID
    community_id: uuid.UUID
    kind: PostKind
    title: str


def _post_example(**fields: JsonValue) -> ConfigDict:
    return with_example(
        post_id=POST_ID, community_id=COMMUNITY_ID, kind="promotion", title="Double points weekend", **fields
    )


class PostSubmitted(_PostEvent):
    """A post was submitted for review."""

    event_type = "content.post_submitted"
    model_config = _post_example(author_id=AUTHOR_ID, submitted_at="2026-11-20T03:00:00Z")

    author_id: uuid.UUID = Field(description="The staff member who wrote it")
    submitted_at: UtcDatetime


class PostApproved(_PostEvent):
    """A reviewer approved a post."""

    event_type = "content.post_approved"
    model_config = _post_example(reviewer_id=REVIEWER_ID, override=False, approved_at="2026-11-20T05:00:00Z")

    reviewer_id: uuid.UUID
    override: bool = Field(description="Approved despite compliance flags (the reviewer's explicit decision)")
    approved_at: UtcDatetime


class PostRejected(_PostEvent):
    """A reviewer rejected a post."""

    event_type = "content.post_rejected"
    model_config = _post_example(
        reviewer_id=REVIEWER_ID, reason="“全网最低” is an absolute claim.", rejected_at="2026-11-20T05:00:00Z"
    )

    reviewer_id: uuid.UUID
    reason: str = Field(description="Why it was rejected")
    rejected_at: UtcDatetime


class PostScheduled(_PostEvent):
    """An approved post was scheduled for publication."""

    event_type = "content.post_scheduled"
    model_config = _post_example(publish_at="2026-11-21T12:00:00Z", scheduled_at="2026-11-20T06:00:00Z")

    publish_at: UtcDatetime
    scheduled_at: UtcDatetime


class PostPublished(_PostEvent):
    """A scheduled post was published: the partner's bot posts it in the group."""

    event_type = "content.post_published"
    model_config = with_example(
        post_id=POST_ID,
        community_id=COMMUNITY_ID,
        kind="poll",
        title="Which night suits the quiz?",
        body="Vote for the night of our weekly quiz.",
        options=["Tuesday", "Thursday"],
        published_at="2026-11-21T12:00:00Z",
    )

    body: str
    options: list[str] | None = Field(description="The choices of a poll; null for other kinds")
    published_at: UtcDatetime


class PostCancelled(_PostEvent):
    """A scheduled post was taken off the schedule (it is `approved` again)."""

    event_type = "content.post_cancelled"
    model_config = _post_example(publish_at="2026-11-21T12:00:00Z", cancelled_at="2026-11-20T07:00:00Z")

    publish_at: UtcDatetime = Field(description="When it would have been published")
    cancelled_at: UtcDatetime


class PollVoted(EventModel):
    """A member voted in a published poll (the members service records it as `poll_voted` activity)."""

    event_type = "content.poll_voted"
    model_config = with_example(
        vote_id="5e6f7a8b-9c0d-4e1f-8a2b-3c4d5e6f7a8b",
        post_id=POST_ID,
        community_id=COMMUNITY_ID,
        member_id=MEMBER_ID,
        option="Tuesday",
        voted_at="2026-11-21T12:05:00Z",
    )

    vote_id: uuid.UUID = Field(description="The vote's id (the activity's id in members)")
    post_id: uuid.UUID
    community_id: uuid.UUID
    member_id: uuid.UUID
    option: str
    voted_at: UtcDatetime
