"""`/v1/posts`: drafting, review, scheduling and the calendar."""

from __future__ import annotations

import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Query, Response, status
from pydantic import AwareDatetime

from services.common.db import DatabaseDep, SessionDep, utcnow
from services.common.pagination import PageDep
from services.common.problems import problem_responses
from services.content.access import Operator, PostReader, Reviewer, ZonesDep, actor_id
from services.content.compliance.schemas import ComplianceFlag, ComplianceOverride, ComplianceReport
from services.content.posts import calendar, service
from services.content.posts.schemas import (
    ApproveBody,
    PostCreate,
    PostPage,
    PostRead,
    PostStatus,
    PostUpdate,
    RejectBody,
    ScheduleBody,
)

router = APIRouter(prefix="/v1/posts", tags=["posts"])


def _read(row: Any) -> PostRead:
    override = ComplianceOverride(reviewer_id=row.override_by, at=row.override_at) if row.override_by else None
    return PostRead.model_validate({**row._mapping, "compliance_override": override})


@router.post("", status_code=status.HTTP_201_CREATED, responses=problem_responses(401, 403, 404, 422, 503))
async def create_post(data: PostCreate, session: SessionDep, caller: Operator, zones: ZonesDep) -> PostRead:
    """Draft a post in a community."""
    await zones.zone_of(data.community_id)  # the community must exist in members
    return _read(await service.create_post(session, data, actor_id(caller), utcnow()))


@router.get("", response_model=PostPage, responses=problem_responses(401, 403, 422))
async def list_posts(
    db: DatabaseDep,
    page: PageDep,
    _caller: PostReader,
    community_id: uuid.UUID | None = None,
    post_status: Annotated[PostStatus | None, Query(alias="status")] = None,
    start: Annotated[AwareDatetime | None, Query(alias="from", description="calendar time at or after")] = None,
    end: Annotated[AwareDatetime | None, Query(alias="to", description="calendar time before")] = None,
) -> Response:
    """The calendar: posts by publication time (creation time until scheduled), keyset-paged."""
    body = await calendar.calendar_json(db, page, community_id=community_id, status=post_status, start=start, end=end)
    return Response(body, media_type="application/json")


@router.get("/{post_id}", responses=problem_responses(401, 403, 404))
async def get_post(post_id: uuid.UUID, session: SessionDep, _caller: PostReader) -> PostRead:
    """Read one post."""
    return _read(await service.get_post(session, post_id))


@router.patch("/{post_id}", responses=problem_responses(401, 403, 404, 409, 422))
async def update_post(post_id: uuid.UUID, data: PostUpdate, session: SessionDep, _caller: Operator) -> PostRead:
    """Edit a draft or a rejected post."""
    return _read(await service.update_post(session, post_id, data, utcnow()))


@router.post("/{post_id}/submit", responses=problem_responses(401, 403, 404, 409))
async def submit_post(post_id: uuid.UUID, session: SessionDep, _caller: Operator) -> PostRead:
    """Send a draft (or a rejected post, edited) to review; the compliance check runs and its
    flags are stored on the post."""
    return _read(await service.submit_post(session, post_id, utcnow()))


@router.post("/{post_id}/compliance-check", responses=problem_responses(401, 403, 404))
async def check_post_compliance(post_id: uuid.UUID, session: SessionDep, _caller: PostReader) -> ComplianceReport:
    """Run the compliance check on a post (stored on it while it is a draft, rejected or in review)."""
    now = utcnow()
    flags, _row = await service.check_post(session, post_id, now)
    return ComplianceReport(flags=[ComplianceFlag.model_validate(f) for f in flags], checked_at=now)


@router.post("/{post_id}/approve", responses=problem_responses(401, 403, 404, 409, 422))
async def approve_post(
    post_id: uuid.UUID, session: SessionDep, caller: Reviewer, data: ApproveBody | None = None
) -> PostRead:
    """Approve a post in review (reviewers); a promotion with compliance flags needs
    `{"override": true}` (else 409 `compliance-override-required`), which is recorded."""
    override = data.override if data is not None else False
    return _read(await service.approve_post(session, post_id, actor_id(caller), utcnow(), override=override))


@router.post("/{post_id}/reject", responses=problem_responses(401, 403, 404, 409, 422))
async def reject_post(post_id: uuid.UUID, data: RejectBody, session: SessionDep, caller: Reviewer) -> PostRead:
    """Reject a post in review, saying why (reviewers)."""
    return _read(await service.reject_post(session, post_id, actor_id(caller), data.reason, utcnow()))


@router.post("/{post_id}/schedule", responses=problem_responses(401, 403, 404, 409, 422, 503))
async def schedule_post(
    post_id: uuid.UUID, data: ScheduleBody, db: DatabaseDep, session: SessionDep, _caller: Operator, zones: ZonesDep
) -> PostRead:
    """Schedule an approved post; a time that breaks the publishing policy is a 422 naming the rule."""
    # Read outside the transaction, so a zone-cache miss asks members with none open.
    post = await service.read_post_facts(db, post_id)
    zone = await zones.zone_of(post.community_id)
    return _read(await service.schedule_post(session, post, data.publish_at, zone, utcnow()))


@router.post("/{post_id}/cancel", responses=problem_responses(401, 403, 404, 409))
async def cancel_post(post_id: uuid.UUID, session: SessionDep, _caller: Operator) -> PostRead:
    """Take a scheduled post off the schedule (it is approved again)."""
    return _read(await service.cancel_post(session, post_id, utcnow()))
