"""Tables of gateway authentication: staff accounts, refresh-token families, API keys,
member token versions."""

from __future__ import annotations

import uuid
from datetime import datetime

import sqlalchemy as sa
from sqlmodel import Field

from services.common.db import UTCDateTime, new_id, utcnow
from services.gateway.db import GatewayModel


class StaffAccount(GatewayModel, table=True):
    """A person who operates Qunyun (admin, operator, reviewer, agent, analyst)."""

    __tablename__ = "staff_accounts"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    # Stored normalized (trimmed, lower-case): the unique key is then case-insensitive on every backend.
    email: str = Field(max_length=320, unique=True)
    display_name: str = Field(max_length=200)
    roles: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    password_hash: str = Field(max_length=255)
    disabled: bool = Field(default=False)
    # Bumped when the password changes or the account is disabled: older access tokens stop working.
    token_version: int = Field(default=1)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_login_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class RefreshFamily(GatewayModel, table=True):
    """One login's chain of rotating refresh tokens; revoking it ends every token of the chain."""

    __tablename__ = "refresh_families"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    staff_id: uuid.UUID = Field(foreign_key="staff_accounts.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_reason: str | None = Field(default=None, max_length=32)


class RefreshToken(GatewayModel, table=True):
    """A refresh token, stored only as the SHA-256 of its random value."""

    __tablename__ = "refresh_tokens"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    token_hash: str = Field(max_length=64, unique=True)
    family_id: uuid.UUID = Field(foreign_key="refresh_families.id", ondelete="CASCADE", index=True)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    expires_at: datetime = Field(sa_type=UTCDateTime)
    spent_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    # The token issued when this one was spent: a duplicate refresh within the reuse grace
    # gets that one (see sessions.py). Same family, so no foreign key is needed to clean up.
    successor_id: uuid.UUID | None = Field(default=None)


class ApiKey(GatewayModel, table=True):
    """A partner's API key: the secret is stored only as its SHA-256 and shown once at creation."""

    __tablename__ = "api_keys"

    id: uuid.UUID = Field(default_factory=new_id, primary_key=True)
    name: str = Field(max_length=200)
    scopes: list[str] = Field(default_factory=list, sa_type=sa.JSON, nullable=False)
    secret_hash: str = Field(max_length=64)
    created_by: uuid.UUID | None = Field(default=None)
    created_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
    last_used_at: datetime | None = Field(default=None, sa_type=UTCDateTime)
    revoked_at: datetime | None = Field(default=None, sa_type=UTCDateTime)


class MemberTokenVersion(GatewayModel, table=True):
    """The current version of a member's access tokens: a token minted with another is refused.

    Bumped by erasure (`member.erased`) and `POST /v1/members/{id}/revoke-tokens`; a member
    without a row is at version 0 (the version of tokens minted before versions existed).
    """

    __tablename__ = "member_token_versions"

    member_id: uuid.UUID = Field(primary_key=True)
    version: int = Field(default=0)
    updated_at: datetime = Field(default_factory=utcnow, sa_type=UTCDateTime)
