"""`GET /v1/members/{id}/overview`: member, points, badges, open tickets and contact budget.

The five parts are read at once, each within the part budget. The member part is the
view's reason to exist: members refusing it (404) is the answer, members failing it is a
503. Any other part that fails is left out (null) and its service named in `degraded`.
"""

from __future__ import annotations

import uuid
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from services.common.problems import NotFound, ProblemError, ServiceUnavailable
from services.common.settings import ServiceName
from services.gateway.compose.parts import Part, PartFailed, PartRefused, PartResults, Upstream

OPEN_TICKET_STATUSES = ("new", "open", "pending")
OPEN_TICKETS_SHOWN = 50
RETRY_AFTER_SECONDS = "5"

M = TypeVar("M", bound=BaseModel)


def overview_parts(member_id: uuid.UUID, community_id: uuid.UUID | None) -> dict[str, Part]:
    budget_params = {"community_id": str(community_id)} if community_id else {}
    return {
        "member": Part("members", f"/v1/members/{member_id}"),
        "points": Part("rewards", f"/v1/members/{member_id}/points"),
        "badges": Part("rewards", f"/v1/members/{member_id}/badges", {"limit": "200"}),
        "open_tickets": Part(
            "feedback",
            "/v1/tickets",
            {"member_id": str(member_id), "status": OPEN_TICKET_STATUSES, "limit": str(OPEN_TICKETS_SHOWN)},
        ),
        "contact_budget": Part("content", f"/v1/members/{member_id}/contact-budget", budget_params),
    }


def required_part(results: PartResults, name: str, what: str) -> Any:
    """A part the view cannot do without: its refusal is the answer, its failure a 503."""
    error = results.errors.get(name)
    if isinstance(error, PartRefused):
        if error.status_code == 404:
            raise NotFound(f"No such {what}.")
        raise ProblemError(f"The {error.service} service refused: {error.status_code}.", status=error.status_code)
    if isinstance(error, PartFailed):
        raise ServiceUnavailable(
            f"The {error.service} service is unavailable ({error.reason}); try again shortly.",
            headers={"Retry-After": RETRY_AFTER_SECONDS},
        )
    return results.values[name]


def optional_part(results: PartResults, name: str, model: type[M], degraded: set[ServiceName]) -> M | None:
    """A part the view can do without: None (and its service marked degraded) if missing or malformed."""
    value = results.value(name)
    if name in results.errors or value is None:
        degraded.add(results.services[name])
        return None
    try:
        return model.model_validate(value)
    except ValidationError:
        degraded.add(results.services[name])
        return None


def raw_part(results: PartResults, name: str, degraded: set[ServiceName], *, items: bool = False) -> Any | None:
    """A part passed on as its service wrote it (the overview is on the hot path: no re-validation);
    None, and its service marked degraded, if missing or not the expected shape."""
    value = results.value(name)
    if isinstance(value, dict) and items:
        value = value.get("items")
    if name in results.errors or not isinstance(value, list if items else dict):
        degraded.add(results.services[name])
        return None
    return value


async def member_overview(
    upstream: Upstream, member_id: uuid.UUID, community_id: uuid.UUID | None, budget: float
) -> tuple[str, dict[str, Any]]:
    """The overview as JSON-ready data, shaped as `OverviewRead`, and its parts' Server-Timing."""
    results = await upstream.gather(overview_parts(member_id, community_id), budget)
    member = required_part(results, "member", "member")
    degraded: set[ServiceName] = set()
    timing = results.server_timing()
    return timing, {
        "member": member,
        "points": raw_part(results, "points", degraded),
        "badges": raw_part(results, "badges", degraded, items=True),
        "open_tickets": raw_part(results, "open_tickets", degraded, items=True),
        "contact_budget": raw_part(results, "contact_budget", degraded),
        "degraded": sorted(degraded),
    }
