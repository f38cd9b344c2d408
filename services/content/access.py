"""Who may do what in content: one policy per domain, as typed dependencies."""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends, Request

from services.common.identity import Identity, require
from services.content.communities.service import CommunityZones

# Operators (and admins) write posts and policies; reviewers also read the calendar.
Operator = Annotated[Identity, Depends(require("operator"))]
Reviewer = Annotated[Identity, Depends(require("reviewer"))]
PostReader = Annotated[Identity, Depends(require("operator", "reviewer"))]
PermitRequester = Annotated[Identity, Depends(require("operator", scopes=("contact:write",)))]


def actor_id(caller: Identity) -> uuid.UUID:
    """The caller's id as a UUID (staff ids are UUIDs; anything else gets a stable one)."""
    try:
        return uuid.UUID(caller.id)
    except ValueError:
        return uuid.uuid5(uuid.NAMESPACE_URL, f"qunyun:{caller.key}")


def community_zones(request: Request) -> CommunityZones:
    zones: CommunityZones = request.app.state.zones
    return zones


ZonesDep = Annotated[CommunityZones, Depends(community_zones)]
