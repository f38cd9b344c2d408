"""Who may read the composed views, and as whom the gateway reads their parts.

The gateway decides access to a composed view here, in one place; the services still
check every part against the identity it is read as:

- a member reads as themself, so each service scopes the part to their own rows again;
- staff the view admits (an operator's overview, say) read as the system identity,
  because the view's policy is wider than one part's (an operator is not a ticket agent,
  yet the overview shows the member's open tickets);
- the dashboard reads as the caller: operators and analysts may read every part themselves.
"""

from __future__ import annotations

import uuid
from typing import Annotated

from fastapi import Depends

from services.common.identity import SYSTEM, Identity, ensure_self_or
from services.gateway.auth.deps import GatewayCaller, require_gateway

DashboardReader = Annotated[Identity, Depends(require_gateway("operator", "analyst"))]
ErasureAuditor = Annotated[Identity, Depends(require_gateway())]  # admins only


def overview_reader(caller: GatewayCaller, member_id: uuid.UUID) -> Identity:
    """Operators (and admins) see any member's overview; a member sees their own."""
    ensure_self_or(caller, member_id, "operator")
    return caller


def exporter(caller: GatewayCaller, member_id: uuid.UUID) -> Identity:
    """Admins export any member; a member exports themself."""
    ensure_self_or(caller, member_id)
    return caller


OverviewReader = Annotated[Identity, Depends(overview_reader)]
Exporter = Annotated[Identity, Depends(exporter)]


def reads_as(caller: Identity) -> Identity:
    """The identity a composed view's parts are read as (see the module docstring)."""
    return caller if caller.kind == "member" else SYSTEM
