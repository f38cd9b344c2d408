"""The post workflow: every transition is one conditional UPDATE (`WHERE status IN ...`),
so two requests racing on one post cannot both win, and each writes its event in the
same transaction."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncSession

from services.common.contracts.content import (
    PostApproved,
    PostCancelled,
    PostPublished,
    PostRejected,
    PostScheduled,
    PostSubmitted,
)
from services.common.db import Database, PreparedRead, new_id, table_of, wake_after_commit
from services.common.events import EventDraft, emit, emit_many
from services.common.problems import Conflict, NotFound, Unprocessable
from services.content.compliance import service as compliance
from services.content.policy.service import check_schedule, lock_community_schedule
from services.content.posts.models import Post
from services.content.posts.schemas import PostCreate, PostUpdate, _check_options

POSTS = table_of(Post)
PUBLISHER_CHANNEL = "posts"  # a commit that scheduled a post wakes the publisher


class PostNotFound(NotFound):
    slug, title = "post-not-found", "Post not found"


class InvalidTransition(Conflict):
    slug, title = "invalid-transition", "Not allowed in the post's current status"


class PostNotEditable(Conflict):
    slug, title = "post-not-editable", "Only drafts and rejected posts can be edited"


class PublishAtInPast(Unprocessable):
    slug, title = "publish-at-in-past", "The publication time has passed"


class ComplianceOverrideRequired(Conflict):
    """A promotion with compliance flags is approved only with the reviewer's explicit override."""

    slug, title = "compliance-override-required", "Flagged promotion needs the reviewer's override"


# The check on a post is stored while its text may still change or is under review; later
# the flags stay as they were when it was approved.
CHECK_STORED_IN = ("draft", "rejected", "in_review")


async def create_post(session: AsyncSession, data: PostCreate, author_id: uuid.UUID, now: datetime) -> Any:
    row = (
        await session.execute(
            POSTS.insert()
            .values(
                id=new_id(),
                community_id=data.community_id,
                title=data.title,
                body=data.body,
                kind=data.kind,
                status="draft",
                options=data.options,
                calendar_at=now,
                author_id=author_id,
                created_at=now,
                updated_at=now,
            )
            .returning(POSTS)
        )
    ).one()
    return row


@dataclass(frozen=True)
class PostFacts:
    """What scheduling decides on before its transaction: none of it changes once a post is
    approved (only drafts and rejected posts are edited); the status is checked again by the
    conditional UPDATE."""

    id: uuid.UUID
    community_id: uuid.UUID
    kind: str
    status: str


_POST_FACTS = PreparedRead(
    sa.select(POSTS.c.id, POSTS.c.community_id, POSTS.c.kind, POSTS.c.status).where(
        POSTS.c.id == sa.bindparam("post_id", type_=sa.Uuid())
    )
)


async def read_post_facts(db: Database, post_id: uuid.UUID) -> PostFacts:
    """The post as committed, on the raw pool: no request transaction is open yet."""
    row = await _POST_FACTS.fetch_one(db, post_id=post_id)
    if row is None:
        raise PostNotFound("No such post.")
    return PostFacts(row["id"], row["community_id"], row["kind"], row["status"])


async def get_post(session: AsyncSession, post_id: uuid.UUID) -> Any:
    row = (await session.execute(sa.select(POSTS).where(POSTS.c.id == post_id))).first()
    if row is None:
        raise PostNotFound("No such post.")
    return row


async def update_post(session: AsyncSession, post_id: uuid.UUID, data: PostUpdate, now: datetime) -> Any:
    current = await get_post(session, post_id)
    changes = data.model_dump(exclude_unset=True)
    if any(changes.get(f, "") is None for f in ("title", "body", "kind")):
        raise Unprocessable("title, body and kind cannot be null.")
    kind = changes.get("kind", current.kind)
    options = changes.get("options", current.options) if kind == "poll" else changes.get("options")
    try:
        _check_options(kind, options)
    except ValueError as exc:
        raise Unprocessable(str(exc)) from exc
    changes["options"] = options
    row = (
        await session.execute(
            POSTS.update()
            .where(POSTS.c.id == post_id, POSTS.c.status.in_(("draft", "rejected")))
            .values(**changes, compliance_flags=None, compliance_checked_at=None, updated_at=now)
            .returning(POSTS)
        )
    ).first()
    if row is None:
        raise PostNotEditable(f"The post is {current.status}; only drafts and rejected posts can be edited.")
    return row


async def _lock_post(session: AsyncSession, post_id: uuid.UUID) -> Any:
    row = (await session.execute(sa.select(POSTS).where(POSTS.c.id == post_id).with_for_update())).first()
    if row is None:
        raise PostNotFound("No such post.")
    return row


async def _store_flags(session: AsyncSession, post_id: uuid.UUID, flags: list[dict[str, Any]], now: datetime) -> Any:
    return (
        await session.execute(
            POSTS.update()
            .where(POSTS.c.id == post_id)
            .values(compliance_flags=flags, compliance_checked_at=now)
            .returning(POSTS)
        )
    ).one()


async def check_post(session: AsyncSession, post_id: uuid.UUID, now: datetime) -> tuple[list[dict[str, Any]], Any]:
    """Run the compliance check on a post against its community's list; the flags are
    stored on the post unless it is past review (then they stay as approved). Only a check
    that stores locks the post (so the text checked is the text stored): a post past review
    never returns to a status that stores, and its text no longer changes."""
    current = await get_post(session, post_id)
    if current.status in CHECK_STORED_IN:
        current = await _lock_post(session, post_id)
    flags = compliance.flags_json(
        await compliance.flags_for(session, current.community_id, current.title, current.body)
    )
    if current.status in CHECK_STORED_IN:
        current = await _store_flags(session, post_id, flags, now)
    return flags, current


async def _transition(
    session: AsyncSession, post_id: uuid.UUID, action: str, allowed_from: tuple[str, ...], **values: Any
) -> Any:
    row = (
        await session.execute(
            POSTS.update()
            .where(POSTS.c.id == post_id, POSTS.c.status.in_(allowed_from))
            .values(**values)
            .returning(POSTS)
        )
    ).first()
    if row is None:
        current = await get_post(session, post_id)
        raise InvalidTransition(
            f"Cannot {action} a post that is {current.status} (only from {' or '.join(allowed_from)})."
        )
    return row


def _post_fields(row: Any) -> dict[str, Any]:
    return {"post_id": row.id, "community_id": row.community_id, "kind": row.kind, "title": row.title}


async def submit_post(session: AsyncSession, post_id: uuid.UUID, now: datetime) -> Any:
    """draft | rejected -> in_review, with the compliance flags of the text submitted: the post
    is locked first (the text checked is the text submitted), then written once."""
    current = await _lock_post(session, post_id)
    allowed_from = ("draft", "rejected")
    if current.status not in allowed_from:
        raise InvalidTransition(f"Cannot submit a post that is {current.status} (only from draft or rejected).")
    flags = compliance.flags_json(
        await compliance.flags_for(session, current.community_id, current.title, current.body)
    )
    row = await _transition(
        session,
        post_id,
        "submit",
        allowed_from,
        status="in_review",
        rejection_reason=None,
        override_by=None,
        override_at=None,
        compliance_flags=flags,
        compliance_checked_at=now,
        updated_at=now,
    )
    await emit(session, PostSubmitted(**_post_fields(row), author_id=row.author_id, submitted_at=now))
    return row


async def approve_post(
    session: AsyncSession, post_id: uuid.UUID, reviewer_id: uuid.UUID, now: datetime, *, override: bool = False
) -> Any:
    """in_review -> approved. A promotion the compliance check flagged needs `override`; an
    override of flags (on any kind) is recorded on the post: who, when."""
    current = await _lock_post(session, post_id)  # the flags read are the flags decided on
    if current.status != "in_review":
        raise InvalidTransition(f"Cannot approve a post that is {current.status} (only from in_review).")
    flags = current.compliance_flags
    if flags is None:  # in review since before the check existed
        flags = compliance.flags_json(
            await compliance.flags_for(session, current.community_id, current.title, current.body)
        )
    if flags and current.kind == "promotion" and not override:
        raise ComplianceOverrideRequired(
            f"The promotion has {len(flags)} compliance flag(s): {compliance.describe(flags)}. "
            'Approve with {"override": true} to accept them, or reject it.',
            flags=flags,
        )
    overridden = bool(flags) and override
    row = await _transition(
        session,
        post_id,
        "approve",
        ("in_review",),
        status="approved",
        reviewer_id=reviewer_id,
        compliance_flags=flags,
        compliance_checked_at=current.compliance_checked_at or now,
        override_by=reviewer_id if overridden else None,
        override_at=now if overridden else None,
        updated_at=now,
    )
    await emit(
        session, PostApproved(**_post_fields(row), reviewer_id=reviewer_id, override=overridden, approved_at=now)
    )
    return row


async def reject_post(
    session: AsyncSession, post_id: uuid.UUID, reviewer_id: uuid.UUID, reason: str, now: datetime
) -> Any:
    row = await _transition(
        session,
        post_id,
        "reject",
        ("in_review",),
        status="rejected",
        reviewer_id=reviewer_id,
        rejection_reason=reason,
        updated_at=now,
    )
    await emit(session, PostRejected(**_post_fields(row), reviewer_id=reviewer_id, reason=reason, rejected_at=now))
    return row


async def schedule_post(
    session: AsyncSession, post: PostFacts, publish_at: datetime, zone: ZoneInfo, now: datetime
) -> Any:
    """approved -> scheduled, if `publish_at` is ahead and keeps the community's policy."""
    if post.status != "approved":
        raise InvalidTransition(f"Cannot schedule a post that is {post.status} (only from approved).")
    if publish_at <= now:
        raise PublishAtInPast("publish_at must be in the future.")
    await lock_community_schedule(session, post.community_id)
    await check_schedule(
        session, post.community_id, zone, publish_at, promotion=post.kind == "promotion", post_id=post.id
    )
    row = await _transition(
        session,
        post.id,
        "schedule",
        ("approved",),
        status="scheduled",
        publish_at=publish_at,
        calendar_at=publish_at,
        updated_at=now,
    )
    await emit(session, PostScheduled(**_post_fields(row), publish_at=publish_at, scheduled_at=now))
    wake_after_commit(session, PUBLISHER_CHANNEL)
    return row


async def cancel_post(session: AsyncSession, post_id: uuid.UUID, now: datetime) -> Any:
    """scheduled -> approved (the publisher's conditional UPDATE and this one cannot both win)."""
    current = await get_post(session, post_id)
    row = await _transition(
        session,
        post_id,
        "cancel",
        ("scheduled",),
        status="approved",
        publish_at=None,
        calendar_at=current.created_at,
        updated_at=now,
    )
    await emit(session, PostCancelled(**_post_fields(row), publish_at=current.publish_at, cancelled_at=now))
    return row


async def publish_due(session: AsyncSession, now: datetime, limit: int = 1000) -> list[Any]:
    """Publish up to `limit` scheduled posts whose time has come, each exactly once: the due
    rows are claimed with `FOR UPDATE SKIP LOCKED` (another replica takes the others) and the
    UPDATE still demands `status = 'scheduled'` (a post cancelled meanwhile stays cancelled)."""
    due = (
        sa.select(POSTS.c.id)
        .where(POSTS.c.status == "scheduled", POSTS.c.publish_at <= now)
        .order_by(POSTS.c.publish_at)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("due")
    )
    rows = (
        await session.execute(
            POSTS.update()
            .where(POSTS.c.id == due.c.id, POSTS.c.status == "scheduled")
            .values(status="published", published_at=now, updated_at=now)
            .returning(POSTS)
        )
    ).all()
    await emit_many(
        session,
        [
            EventDraft(
                PostPublished(**_post_fields(row), body=row.body, options=row.options, published_at=now),
                occurred_at=now,
            )
            for row in rows
        ],
    )
    return list(rows)


async def next_due_in(session: AsyncSession, now: datetime) -> timedelta | None:
    """How long until the next scheduled post is due (None if none is scheduled)."""
    first = await session.scalar(sa.select(sa.func.min(POSTS.c.publish_at)).where(POSTS.c.status == "scheduled"))
    return None if first is None else first - now


async def counts_by_status(session: AsyncSession) -> dict[str, int]:
    rows = await session.execute(sa.select(POSTS.c.status, sa.func.count()).group_by(POSTS.c.status))
    return {status: int(n) for status, n in rows}
