"""Member access tokens, minted for partners (and staff) after the members service vouches
that the member exists."""

from __future__ import annotations

import uuid

import httpx

from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, sign_internal_token
from services.common.problems import GatewayTimeout, NotFound, ServiceUnavailable
from services.common.settings import Settings
from services.gateway.auth.schemas import MemberTokenCreate, MemberTokenRead
from services.gateway.auth.tokens import issue_access_token


class MemberNotFound(NotFound):
    slug, title = "member-not-found", "Member not found"


async def resolve_member(http: httpx.AsyncClient, settings: Settings, ref: MemberTokenCreate) -> uuid.UUID:
    """The member's id, asked of the members service (`GET /internal/members/resolve`).

    Signed as the system: the gateway has already decided that the caller may mint the token.
    """
    params = {"member_id": str(ref.member_id)} if ref.member_id else {"external_id": ref.external_id or ""}
    try:
        response = await http.get(
            f"{settings.url_for('members')}/internal/members/resolve",
            params=params,
            headers={INTERNAL_TOKEN_HEADER: sign_internal_token(SYSTEM, settings)},
        )
    except httpx.TimeoutException as exc:
        raise GatewayTimeout("The members service did not answer in time.") from exc
    except httpx.TransportError as exc:
        raise ServiceUnavailable("The members service is not reachable.") from exc
    if response.status_code == 404:
        raise MemberNotFound("No such member.")
    if response.status_code != 200:
        raise ServiceUnavailable(f"The members service answered {response.status_code} to the member lookup.")
    try:
        return uuid.UUID(response.json()["id"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ServiceUnavailable("The members service gave a malformed answer.") from exc


def issue_member_token(settings: Settings, member_id: uuid.UUID) -> MemberTokenRead:
    token, expires_in = issue_access_token(
        settings, "member", str(member_id), ttl_seconds=settings.member_token_ttl_seconds
    )
    return MemberTokenRead(access_token=token, expires_in=expires_in, member_id=member_id)
