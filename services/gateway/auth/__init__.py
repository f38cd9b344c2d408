"""Gateway authentication: staff logins, JWTs, refresh tokens, API keys, member tokens."""

from fastapi import APIRouter


def auth_routers() -> list[APIRouter]:
    """The gateway's own auth and access routes (filled in by the auth work)."""
    return []
