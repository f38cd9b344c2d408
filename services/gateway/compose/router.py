"""The gateway's composed views: member overview, community dashboard, export, erasure status."""

from __future__ import annotations

import uuid
from datetime import date
from typing import Annotated

import orjson
from fastapi import APIRouter, Header, Query, Request
from fastapi.responses import JSONResponse
from starlette.responses import Response

from services.common.db import SessionDep
from services.common.problems import problem_responses
from services.common.settings import Settings
from services.gateway.compose.access import DashboardReader, ErasureAuditor, Exporter, OverviewReader, reads_as
from services.gateway.compose.dashboard import DashboardCache, cached_dashboard
from services.gateway.compose.erasure import erasure_status
from services.gateway.compose.export import ZIP_MEDIA_TYPE, export_zip, member_export, wants_zip
from services.gateway.compose.overview import member_overview
from services.gateway.compose.parts import Upstream
from services.gateway.compose.schemas import DashboardRead, ErasureStatusRead, MemberExportRead, OverviewRead

router = APIRouter(prefix="/v1", tags=["composed views"])


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


@router.get(
    "/members/{member_id}/overview",
    response_model=OverviewRead,
    responses=problem_responses(401, 403, 404, 503),
)
async def get_member_overview(
    member_id: uuid.UUID,
    request: Request,
    caller: OverviewReader,
    community_id: Annotated[uuid.UUID | None, Query(description="The community of the contact budget")] = None,
) -> Response:
    """A member at a glance: profile, points, badges, open tickets, contact budget (operator; the member)."""
    upstream = Upstream(request, reads_as(caller))
    budget = _settings(request).compose_part_timeout_seconds
    timing, overview = await member_overview(upstream, member_id, community_id, budget)
    # The parts go out as their services wrote them (OverviewRead documents them): no re-validation.
    return Response(orjson.dumps(overview), media_type="application/json", headers={"Server-Timing": timing})


@router.get(
    "/dashboard",
    response_model=DashboardRead,
    response_model_by_alias=True,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def get_dashboard(
    request: Request,
    caller: DashboardReader,
    community_id: Annotated[uuid.UUID, Query(description="The community")],
    from_: Annotated[date | None, Query(alias="from", description="First local day (default: 30 days to `to`)")] = None,
    to: Annotated[date | None, Query(description="Last local day (default: today in the community's zone)")] = None,
) -> DashboardRead:
    """A community's engagement, retention, churn risks, best times, points, content and support (operator, analyst)."""
    cache: DashboardCache = request.app.state.dashboard_cache
    upstream = Upstream(request, caller)
    budget = _settings(request).compose_part_timeout_seconds
    return await cached_dashboard(cache, upstream, community_id, from_, to, budget)


@router.get(
    "/members/{member_id}/export",
    response_model=MemberExportRead,
    responses={
        200: {
            "description": "The export: JSON, or with `Accept: application/zip` a ZIP of one JSON file per service",
            "content": {ZIP_MEDIA_TYPE: {"schema": {"type": "string", "format": "binary"}}},
        },
        **problem_responses(401, 403, 404, 502, 503),
    },
)
async def export_member(
    member_id: uuid.UUID,
    request: Request,
    caller: Exporter,
    accept: Annotated[str | None, Header(include_in_schema=False)] = None,
) -> Response:
    """Everything every service holds about the member (admin; the member), whole or not at all."""
    export = await member_export(Upstream(request, caller), member_id, _settings(request).upstream_timeout_seconds)
    headers = {"Cache-Control": "no-store"}
    if wants_zip(accept):
        headers["Content-Disposition"] = f'attachment; filename="member-{member_id}-export.zip"'
        return Response(export_zip(export), media_type=ZIP_MEDIA_TYPE, headers=headers)
    return JSONResponse(export.model_dump(mode="json"), headers=headers)


@router.get(
    "/members/{member_id}/erasure",
    response_model=ErasureStatusRead,
    responses=problem_responses(401, 403, 404),
)
async def get_erasure_status(member_id: uuid.UUID, session: SessionDep, _caller: ErasureAuditor) -> ErasureStatusRead:
    """Each service's confirmation of the member's erasure, and whether all have confirmed (admin)."""
    return await erasure_status(session, member_id)
