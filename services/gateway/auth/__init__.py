"""Gateway authentication: staff logins, JWTs, refresh tokens, API keys, member tokens.

`identify.identify_caller(request)` resolves the credentials of any request to an Identity;
`deps` has the dependencies the gateway's own routes use (`GatewayCaller`, `AdminCaller`,
`require_gateway`); `admin.ensure_admin` creates the bootstrap admin.
"""

from fastapi import APIRouter

from services.gateway.auth.router import routers


def auth_routers() -> list[APIRouter]:
    """The gateway's own auth and access routes."""
    return routers()
