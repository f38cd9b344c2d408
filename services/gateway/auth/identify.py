"""Who is calling the gateway: resolves `Authorization: Bearer` / `X-API-Key` to an Identity."""

from fastapi import Request

from services.common.identity import Identity


async def identify_caller(request: Request) -> Identity | None:
    """None for an anonymous request; raises Unauthorized for bad credentials.

    Placeholder until the auth work lands: every request is anonymous.
    """
    return None
