"""Routes of gateway authentication: tokens, `/v1/me`, member token revocation, staff
accounts, API keys."""

from __future__ import annotations

import uuid
from typing import Annotated, Any, Literal

from fastapi import APIRouter, BackgroundTasks, Depends, Query, Request, Response, status
from fastapi.security import OAuth2PasswordRequestForm

from services.common.db import SessionDep
from services.common.identity import Identity
from services.common.pagination import PageDep
from services.common.problems import problem_response, problem_responses
from services.common.settings import Settings
from services.gateway.auth import api_keys, member_tokens, sessions, staff
from services.gateway.auth.cache import TTLCache
from services.gateway.auth.deps import AdminCaller, GatewayCaller, require_gateway
from services.gateway.auth.schemas import (
    ApiKeyCreate,
    ApiKeyCreated,
    ApiKeyPage,
    ApiKeyRead,
    MemberTokenCreate,
    MemberTokenRead,
    MeRead,
    StaffCreate,
    StaffPage,
    StaffRead,
    StaffUpdate,
    TokenPairRead,
    TokenRefresh,
    TokenRevoke,
)
from services.gateway.auth.sessions import InvalidRefreshToken, TokenPair
from services.gateway.auth.state import auth_state

StaffRole = Literal["admin", "operator", "reviewer", "agent", "analyst"]

auth_router = APIRouter(prefix="/v1/auth", tags=["auth"])
me_router = APIRouter(prefix="/v1", tags=["auth"])
staff_router = APIRouter(prefix="/v1/staff", tags=["staff"])
api_keys_router = APIRouter(prefix="/v1/api-keys", tags=["api-keys"])
members_router = APIRouter(prefix="/v1/members", tags=["members"])

MemberTokenMinter = Annotated[Identity, Depends(require_gateway("operator", scopes=["members:token"]))]


def _settings(request: Request) -> Settings:
    return request.app.state.settings  # type: ignore[no-any-return]


def _token_answer(pair: TokenPair, response: Response) -> TokenPairRead:
    response.headers["Cache-Control"] = "no-store"  # RFC 6749 5.1: tokens must not be cached
    return TokenPairRead(
        access_token=pair.access_token,
        expires_in=pair.expires_in,
        refresh_token=pair.refresh_token,
        refresh_expires_in=pair.refresh_expires_in,
    )


def _invalidate_after_commit(background: BackgroundTasks, cache: TTLCache[uuid.UUID, Any], key: uuid.UUID) -> None:
    # Now, and again once the change is committed (background tasks run after the commit),
    # so a load racing the commit cannot leave the old state cached.
    cache.invalidate(key)
    background.add_task(cache.invalidate, key)


# --- tokens -----------------------------------------------------------------------------


@auth_router.post("/token", response_model=TokenPairRead, responses=problem_responses(401, 422))
async def create_token(
    form: Annotated[OAuth2PasswordRequestForm, Depends()], session: SessionDep, request: Request, response: Response
) -> TokenPairRead:
    """Log in with email and password (OAuth2 password form); get an access and a refresh token."""
    account = await sessions.authenticate(session, form.username, form.password)
    pair = await sessions.start_session(session, account, _settings(request))
    return _token_answer(pair, response)


@auth_router.post("/refresh", response_model=TokenPairRead, responses=problem_responses(401, 422))
async def refresh_token(
    body: TokenRefresh, session: SessionDep, request: Request, response: Response
) -> TokenPairRead | Response:
    """Trade a refresh token for a new pair; the old one is spent, and reusing it revokes the family.

    A duplicate within `QUNYUN_REFRESH_REUSE_GRACE_SECONDS` of the spend (two tabs refreshing
    at once) gets the successor already issued, with a fresh access token, instead.
    """
    pair = await sessions.rotate_refresh_token(session, body.refresh_token, _settings(request))
    if pair is None:
        # Answered, not raised: a revocation written by the rotation must still be committed.
        error = InvalidRefreshToken()
        return problem_response(
            error.status_code,
            error.type_slug,
            error.problem_title,
            error.detail,
            instance=request.url.path,
            headers=error.headers,
            **error.extra,
        )
    return _token_answer(pair, response)


@auth_router.post("/revoke", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(422))
async def revoke_token(body: TokenRevoke, session: SessionDep) -> None:
    """Log out: revoke a refresh token and every token rotated from the same login."""
    await sessions.revoke_refresh_token(session, body.refresh_token)


@auth_router.post("/member-token", response_model=MemberTokenRead, responses=problem_responses(401, 403, 404, 422, 503))
async def create_member_token(
    body: MemberTokenCreate, _caller: MemberTokenMinter, session: SessionDep, request: Request, response: Response
) -> MemberTokenRead:
    """Mint an access token for a member (partners with `members:token`, admins, operators)."""
    settings = _settings(request)
    member_id = await member_tokens.resolve_member(request.app.state.http, settings, body)
    version = await member_tokens.current_token_version(session, member_id)
    response.headers["Cache-Control"] = "no-store"
    return member_tokens.issue_member_token(settings, member_id, version)


@me_router.get("/me", response_model=MeRead, responses=problem_responses(401))
async def read_me(caller: GatewayCaller) -> MeRead:
    """Who the credentials of this request belong to."""
    return MeRead(
        kind=caller.kind,
        id=caller.id,
        roles=list(caller.roles),
        scopes=list(caller.scopes),
        member_id=caller.member_id,
    )


@members_router.post(
    "/{member_id}/revoke-tokens",
    status_code=status.HTTP_204_NO_CONTENT,
    responses=problem_responses(401, 403, 404, 422, 503),
)
async def revoke_member_tokens(
    member_id: uuid.UUID, caller: GatewayCaller, session: SessionDep, request: Request
) -> None:
    """Revoke every access token of a member (admin, or the member itself).

    Tokens minted before stop working: at once on this gateway replica, within 5 s on the
    others. Tokens minted afterwards work. Repeating the call is harmless (204 each time).
    """
    member_tokens.can_revoke_member_tokens(caller, member_id)
    if caller.kind != "member":  # a member's own valid token already vouches that it exists
        await member_tokens.resolve_member(
            request.app.state.http, _settings(request), MemberTokenCreate(member_id=member_id)
        )
    await member_tokens.revoke_member_tokens(session, [member_id])
    member_tokens.invalidate_after_commit(session, auth_state(request.app).member_versions, [member_id])


# --- staff ------------------------------------------------------------------------------


@staff_router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=StaffRead, responses=problem_responses(401, 403, 409, 422)
)
async def create_staff(body: StaffCreate, _admin: AdminCaller, session: SessionDep) -> StaffRead:
    """Create a staff account (admin)."""
    return StaffRead.model_validate(await staff.create_staff(session, body))


@staff_router.get("", response_model=StaffPage, responses=problem_responses(401, 403, 422))
async def list_staff(
    _admin: AdminCaller,
    session: SessionDep,
    page: PageDep,
    disabled: Annotated[bool | None, Query(description="Only disabled (true) or active (false) accounts")] = None,
    role: Annotated[StaffRole | None, Query(description="Only accounts with this role")] = None,
) -> StaffPage:
    """List staff accounts, oldest first (admin)."""
    rows, cursor = await staff.list_staff(session, page, disabled=disabled, role=role)
    return StaffPage(items=[StaffRead.model_validate(r) for r in rows], next_cursor=cursor)


@staff_router.get("/{staff_id}", response_model=StaffRead, responses=problem_responses(401, 403, 404, 422))
async def read_staff(staff_id: uuid.UUID, _admin: AdminCaller, session: SessionDep) -> StaffRead:
    """One staff account (admin)."""
    return StaffRead.model_validate(await staff.get_staff(session, staff_id))


@staff_router.patch("/{staff_id}", response_model=StaffRead, responses=problem_responses(401, 403, 404, 409, 422))
async def update_staff(
    staff_id: uuid.UUID,
    body: StaffUpdate,
    _admin: AdminCaller,
    session: SessionDep,
    request: Request,
    background: BackgroundTasks,
) -> StaffRead:
    """Change a staff account's name, roles, password or disabled flag (admin)."""
    account = await staff.update_staff(session, staff_id, body)
    _invalidate_after_commit(background, auth_state(request.app).staff, staff_id)
    return StaffRead.model_validate(account)


# --- API keys ---------------------------------------------------------------------------


@api_keys_router.post(
    "", status_code=status.HTTP_201_CREATED, response_model=ApiKeyCreated, responses=problem_responses(401, 403, 422)
)
async def create_api_key(
    body: ApiKeyCreate, admin: AdminCaller, session: SessionDep, response: Response
) -> ApiKeyCreated:
    """Create a partner API key with scopes (admin); the key is in this answer only."""
    created_by = uuid.UUID(admin.id) if admin.kind == "staff" else None
    response.headers["Cache-Control"] = "no-store"
    return await api_keys.create_api_key(session, body, created_by=created_by)


@api_keys_router.get("", response_model=ApiKeyPage, responses=problem_responses(401, 403, 422))
async def list_api_keys(_admin: AdminCaller, session: SessionDep, page: PageDep) -> ApiKeyPage:
    """List active API keys, without their secrets (admin)."""
    items, cursor = await api_keys.list_api_keys(session, page)
    return ApiKeyPage(items=items, next_cursor=cursor)


@api_keys_router.get("/{key_id}", response_model=ApiKeyRead, responses=problem_responses(401, 403, 404, 422))
async def read_api_key(key_id: uuid.UUID, _admin: AdminCaller, session: SessionDep) -> ApiKeyRead:
    """One active API key, without its secret (admin)."""
    return await api_keys.get_api_key(session, key_id)


@api_keys_router.delete(
    "/{key_id}", status_code=status.HTTP_204_NO_CONTENT, responses=problem_responses(401, 403, 404, 422)
)
async def revoke_api_key(
    key_id: uuid.UUID, _admin: AdminCaller, session: SessionDep, request: Request, background: BackgroundTasks
) -> None:
    """Revoke an API key (admin): it answers 401 from then on."""
    await api_keys.revoke_api_key(session, key_id)
    _invalidate_after_commit(background, auth_state(request.app).api_keys, key_id)


def routers() -> list[APIRouter]:
    return [auth_router, me_router, members_router, staff_router, api_keys_router]
