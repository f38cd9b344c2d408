"""`/v1/events`: partners (and members, for themselves) report activity."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, HTTPException, Request, status
from fastapi.exceptions import RequestValidationError
from pydantic import ValidationError

from services.common.db import SessionDep
from services.common.problems import (
    Problem,
    ProblemError,
    is_json_media_type,
    problem_responses,
    problem_type,
)
from services.members.access import BatchEventWriter, EventWriter
from services.members.activity import service
from services.members.activity.schemas import (
    ACTIVITY_BATCH,
    MAX_BATCH,
    ActivityAccepted,
    ActivityBatchCreate,
    ActivityBatchResult,
    ActivityCreate,
    ActivityInput,
    RejectedActivity,
    activity_input,
    passes_model_checks,
)
from services.members.profiles.service import MemberNotFound, resolve_member_ids

router = APIRouter(prefix="/v1/events", tags=["activity"])


class UnsupportedMediaType(ProblemError):
    status, slug, title = 415, "unsupported-media-type", "Unsupported media type"


async def batch_items(request: Request) -> list[ActivityInput | ProblemError]:
    """The batch's items, validated once straight from the body bytes.

    The usual batch (every item valid) is one `validate_json` call into plain dicts (no
    `json.loads`, no model instance per event) and one pass of the model's own checks.
    Anything else takes the careful path, which answers exactly as FastAPI's own body
    handling would: 400 for malformed JSON, 415 for another media type, 422 for a bad
    envelope, and per-item problems for bad items.
    """
    body = await request.body()
    if not body:
        raise RequestValidationError([{"type": "missing", "loc": ("body",), "msg": "Field required", "input": None}])
    content_type = request.headers.get("content-type")
    if content_type and not is_json_media_type(content_type):
        raise UnsupportedMediaType(f"Send the body as JSON with Content-Type: application/json (got {content_type}).")
    try:
        events = ACTIVITY_BATCH.validate_json(body)["events"]
    except ValidationError:
        pass
    else:
        if passes_model_checks(events):
            return list(events)
    try:
        raw: Any = json.loads(body)
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}]) from exc
    except UnicodeDecodeError as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc
    try:
        envelope = ActivityBatchCreate.model_validate(raw)
    except ValidationError as exc:
        raise RequestValidationError([{**e, "loc": ("body", *e["loc"])} for e in exc.errors()]) from exc
    return [
        item if isinstance(item, ProblemError) else activity_input(item)
        for item in service.validate_batch(envelope.events)
    ]


BatchItems = Annotated[list[ActivityInput | ProblemError], Depends(batch_items)]

# The body is read by `batch_items`, so the OpenAPI request body is declared here.
BATCH_REQUEST_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "application/json": {
                "schema": {
                    "title": "ActivityBatchCreate",
                    "type": "object",
                    "additionalProperties": False,
                    "required": ["events"],
                    "properties": {
                        "events": {
                            "title": "Events",
                            "type": "array",
                            "minItems": 1,
                            "maxItems": MAX_BATCH,
                            "items": {"$ref": "#/components/schemas/ActivityCreate"},
                        }
                    },
                }
            }
        },
    }
}


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


@router.post(
    "/batch",
    response_model=ActivityBatchResult,
    responses=problem_responses(400, 401, 403, 415, 422),
    openapi_extra=BATCH_REQUEST_BODY,
)
async def record_activity_batch(
    _caller: BatchEventWriter, items: BatchItems, session: SessionDep
) -> ActivityBatchResult:
    """Record up to 1000 activities; bad items are rejected one by one, the rest are recorded."""
    written = await service.record_batch(session, items)
    return ActivityBatchResult(
        accepted=len(written.inserted),
        duplicates=written.duplicates,
        rejected=[RejectedActivity(index=index, problem=_problem(problem)) for index, problem in written.problems],
    )


def _problem(error: ProblemError) -> Problem:
    return Problem(
        type=problem_type(error.type_slug),
        title=error.problem_title,
        status=error.status_code,
        detail=error.detail,
        **error.extra,
    )
