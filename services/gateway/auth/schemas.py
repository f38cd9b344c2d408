"""The HTTP contract of gateway authentication: tokens, staff accounts, API keys, `/v1/me`."""

from __future__ import annotations

import re
import uuid
from datetime import datetime
from typing import Annotated, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, StringConstraints, model_validator

from services.common.identity import CallerKind
from services.common.pagination import Page
from services.gateway.auth.passwords import MAX_PASSWORD_LENGTH, MIN_PASSWORD_LENGTH
from services.gateway.auth.scopes import KNOWN_SCOPES, STAFF_ROLES

_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def normalize_email(value: str) -> str:
    """Trimmed and lower-cased: emails are unique regardless of case."""
    return value.strip().lower()


def _email(value: str) -> str:
    value = normalize_email(value)
    if not _EMAIL.match(value):
        raise ValueError("not a valid email address")
    return value


def _roles(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(STAFF_ROLES))
    if unknown:
        raise ValueError(f"unknown roles {unknown}; known: {list(STAFF_ROLES)}")
    return list(dict.fromkeys(value))


def _scopes(value: list[str]) -> list[str]:
    unknown = sorted(set(value) - set(KNOWN_SCOPES))
    if unknown:
        raise ValueError(f"unknown scopes {unknown}; known: {list(KNOWN_SCOPES)}")
    return list(dict.fromkeys(value))


Email = Annotated[str, StringConstraints(max_length=320), AfterValidator(_email)]
DisplayName = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Password = Annotated[str, StringConstraints(min_length=MIN_PASSWORD_LENGTH, max_length=MAX_PASSWORD_LENGTH)]
Roles = Annotated[list[str], Field(min_length=1, max_length=len(STAFF_ROLES)), AfterValidator(_roles)]
Scopes = Annotated[list[str], Field(min_length=1, max_length=len(KNOWN_SCOPES)), AfterValidator(_scopes)]


class StrictBody(BaseModel):
    model_config = ConfigDict(extra="forbid")


# --- tokens -----------------------------------------------------------------------------


class TokenPairRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int = Field(description="Seconds until the access token expires")
    refresh_token: str
    refresh_expires_in: int = Field(description="Seconds until the refresh token expires")


class TokenRefresh(StrictBody):
    refresh_token: str = Field(min_length=1, max_length=4096)


class TokenRevoke(StrictBody):
    refresh_token: str = Field(min_length=1, max_length=4096)


class MemberTokenCreate(StrictBody):
    member_id: uuid.UUID | None = None
    # The members service's rule for external ids (API.md): anything else names no member.
    external_id: str | None = Field(default=None, pattern=r"^[A-Za-z0-9][A-Za-z0-9._:@+|-]{0,199}$")

    @model_validator(mode="after")
    def _exactly_one(self) -> MemberTokenCreate:
        if (self.member_id is None) == (self.external_id is None):
            raise ValueError("give exactly one of member_id or external_id")
        return self


class MemberTokenRead(BaseModel):
    access_token: str
    token_type: Literal["bearer"] = "bearer"
    expires_in: int
    member_id: uuid.UUID


class MeRead(BaseModel):
    kind: CallerKind
    id: str
    roles: list[str]
    scopes: list[str]
    member_id: uuid.UUID | None


# --- staff ------------------------------------------------------------------------------


class StaffCreate(StrictBody):
    email: Email
    display_name: DisplayName
    password: Password
    roles: Roles


class StaffUpdate(StrictBody):
    display_name: DisplayName | None = None
    roles: Roles | None = None
    disabled: bool | None = None
    password: Password | None = None

    @model_validator(mode="after")
    def _no_nulls(self) -> StaffUpdate:
        # Leaving a field out keeps it; sending null is a mistake, not "clear it".
        nulls = [name for name in self.model_fields_set if getattr(self, name) is None]
        if nulls:
            raise ValueError(f"fields may be left out but not null: {sorted(nulls)}")
        return self


class StaffRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    email: str
    display_name: str
    roles: list[str]
    disabled: bool
    created_at: datetime
    updated_at: datetime
    last_login_at: datetime | None


class StaffPage(Page[StaffRead]):
    pass


# --- API keys ---------------------------------------------------------------------------


class ApiKeyCreate(StrictBody):
    name: DisplayName
    scopes: Scopes


class ApiKeyRead(BaseModel):
    id: uuid.UUID
    name: str
    scopes: list[str]
    prefix: str = Field(description="The key's public start, to tell keys apart; never the secret")
    created_at: datetime
    last_used_at: datetime | None = Field(description="Approximate (to the minute)")


class ApiKeyCreated(ApiKeyRead):
    key: str = Field(description="The full key: shown only once, store it now")


class ApiKeyPage(Page[ApiKeyRead]):
    pass
