"""`/v1/events`: partners (and members, for themselves) report activity."""

from __future__ import annotations

from fastapi import APIRouter, status

from services.common.db import SessionDep
from services.common.problems import Problem, ProblemError, problem_responses, problem_type
from services.members.access import BatchEventWriter, EventWriter
from services.members.activity import service
from services.members.activity.schemas import (
    ActivityAccepted,
    ActivityBatchCreate,
    ActivityBatchResult,
    ActivityCreate,
    RejectedActivity,
)
from services.members.profiles.service import MemberNotFound, resolve_member_ids

router = APIRouter(prefix="/v1/events", tags=["activity"])


@router.post(
    "",
    status_code=status.HTTP_202_ACCEPTED,
    response_model=ActivityAccepted,
    responses=problem_responses(401, 403, 404, 422),
)
async def record_activity(data: ActivityCreate, session: SessionDep, caller: EventWriter) -> ActivityAccepted:
    """Record one activity; a repeated `id` is recorded once (`duplicate: true`)."""
    if caller.kind == "member":
        # A member reports only its own activity: any other member is "not found".
        if data.member_id not in (None, caller.member_id):
            raise MemberNotFound("No such member.")
        if data.external_id is not None:
            _, by_external = await resolve_member_ids(session, set(), {data.external_id})
            if by_external.get(data.external_id) != caller.member_id:
                raise MemberNotFound("No such member.")
        data = data.model_copy(update={"member_id": caller.member_id, "external_id": None})
    (outcome,) = await service.record_activities(session, [data])
    if isinstance(outcome, ProblemError):
        raise outcome
    return ActivityAccepted(id=outcome.id, duplicate=outcome.duplicate)


@router.post("/batch", response_model=ActivityBatchResult, responses=problem_responses(401, 403, 422))
async def record_activity_batch(
    batch: ActivityBatchCreate, session: SessionDep, _caller: BatchEventWriter
) -> ActivityBatchResult:
    """Record up to 1000 activities; bad items are rejected one by one, the rest are recorded."""
    outcomes = await service.record_activities(session, service.validate_batch(batch.events))
    accepted = duplicates = 0
    rejected: list[RejectedActivity] = []
    for index, outcome in enumerate(outcomes):
        if isinstance(outcome, ProblemError):
            rejected.append(RejectedActivity(index=index, problem=_problem(outcome)))
        elif outcome.duplicate:
            duplicates += 1
        else:
            accepted += 1
    return ActivityBatchResult(accepted=accepted, duplicates=duplicates, rejected=rejected)


def _problem(error: ProblemError) -> Problem:
    return Problem(
        type=problem_type(error.type_slug),
        title=error.problem_title,
        status=error.status_code,
        detail=error.detail,
        **error.extra,
    )
