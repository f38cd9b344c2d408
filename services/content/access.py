"""Who may do what in content: one policy per domain, as typed dependencies."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from services.common.identity import Caller, Identity, require
from services.common.problems import Forbidden
from services.content.communities.service import CommunityZones

# Operators (and admins) write posts and policies; reviewers also read the calendar.
Operator = Annotated[Identity, Depends(require("operator"))]
Reviewer = Annotated[Identity, Depends(require("reviewer"))]
PostReader = Annotated[Identity, Depends(require("operator", "reviewer"))]
# Read-only analytics (counts, best times): operators and analysts.
Analyst = Annotated[Identity, Depends(require("operator", "analyst"))]


def can_request_permit(caller: Identity) -> bool:
    """Who asks before touching a member: operators, partners with `contact:write`, and our own
    services acting as the system (feedback, before its CSAT survey). Never a member."""
    if caller.kind == "member":
        return False
    return caller.kind == "system" or caller.has_role("operator") or caller.has_scope("contact:write")


async def permit_requester(caller: Caller) -> Identity:
    if not can_request_permit(caller):
        raise Forbidden("Your role does not allow this.")
    return caller


PermitRequester = Annotated[Identity, Depends(permit_requester)]


def actor_id(caller: Identity) -> uuid.UUID:
    """The caller's id as a UUID (staff ids are UUIDs; anything else gets a stable one)."""
    try:
        return uuid.UUID(caller.id)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"qunyun:{caller.key}")


async def community_zones(request: Request) -> CommunityZones:
    # async: a plain `def` dependency would hop to the thread pool on every request.
    zones: CommunityZones = request.app.state.zones
    return zones


ZonesDep = Annotated[CommunityZones, Depends(community_zones)]
