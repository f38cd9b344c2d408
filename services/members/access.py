"""Who may do what in the members service (API.md "Roles" and the members table).

Staff roles and partner scopes are checked by these dependencies; a member caller is let
through only where `allow_member` is set, and the route then checks that the row is the
member's own (`ensure_self_or`: anyone else's is 404, so nothing leaks).
"""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends

from services.common.identity import Identity, require

READ_SCOPES = ("read", "members:read")
WRITE_SCOPES = ("members:write",)
EVENT_SCOPES = ("events:write",)

CommunityWriter = Annotated[Identity, Depends(require("operator"))]
CommunityReader = Annotated[Identity, Depends(require("operator", "analyst", scopes=READ_SCOPES))]
MemberWriter = Annotated[Identity, Depends(require("operator", scopes=WRITE_SCOPES))]
MemberListReader = Annotated[Identity, Depends(require("operator", "analyst", scopes=READ_SCOPES))]
# Routes on one member's row: staff/partners by role/scope, the member for itself.
SelfOrReader = Annotated[Identity, Depends(require("operator", "analyst", scopes=READ_SCOPES, allow_member=True))]
SelfOrWriter = Annotated[Identity, Depends(require("operator", scopes=WRITE_SCOPES, allow_member=True))]
SelfOrAdmin = Annotated[Identity, Depends(require(allow_member=True))]
EventWriter = Annotated[Identity, Depends(require("operator", scopes=EVENT_SCOPES, allow_member=True))]
BatchEventWriter = Annotated[Identity, Depends(require("operator", scopes=EVENT_SCOPES))]
SegmentWriter = Annotated[Identity, Depends(require("operator"))]
SegmentReader = Annotated[Identity, Depends(require("operator", "analyst"))]
Analyst = Annotated[Identity, Depends(require("operator", "analyst"))]
Resolver = Annotated[Identity, Depends(require("operator", scopes=("members:token", *READ_SCOPES), allow_member=True))]
