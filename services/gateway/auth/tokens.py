"""Access tokens (JWT, HS256) and opaque refresh / API key secrets.

Access tokens are short-lived JWTs signed with `settings.jwt_signing_key`. Decoding pins the
algorithm and checks issuer, audience, type, expiry, issued-at and subject, so a token
minted for another purpose (a refresh, the internal token, `alg: none`) is never accepted.
"""

from __future__ import annotations

import hashlib
import secrets
import time
import uuid
from dataclasses import dataclass
from typing import Any, Literal

import jwt

from services.common.problems import Unauthorized
from services.common.settings import Settings

ACCESS_AUDIENCE = "qunyun-api"
ACCESS_TYPE = "access"
LEEWAY_SECONDS = 30  # clock skew tolerated between replicas

TokenKind = Literal["staff", "member"]


class InvalidToken(Unauthorized):
    slug, title = "invalid-token", "Invalid access token"

    def __init__(self, detail: str = "The access token is invalid or expired.") -> None:
        super().__init__(detail, headers={"WWW-Authenticate": 'Bearer error="invalid_token"'})


@dataclass(frozen=True)
class AccessClaims:
    kind: TokenKind
    subject: str
    version: int
    expires_at: int


def issue_access_token(
    settings: Settings,
    kind: TokenKind,
    subject: str,
    *,
    version: int = 0,
    ttl_seconds: int | None = None,
    now: float | None = None,
) -> tuple[str, int]:
    """A signed access token for a staff account or a member, and its lifetime in seconds."""
    ttl = ttl_seconds if ttl_seconds is not None else settings.access_token_ttl_seconds
    issued = int(now if now is not None else time.time())
    claims: dict[str, Any] = {
        "iss": settings.jwt_issuer,
        "aud": ACCESS_AUDIENCE,
        "typ": ACCESS_TYPE,
        "sub": subject,
        "kind": kind,
        "iat": issued,
        "exp": issued + ttl,
        "jti": secrets.token_hex(8),
        # The account's (staff) or member's token version: bumping it revokes older tokens.
        "ver": version,
    }
    token = jwt.encode(claims, settings.jwt_signing_key.get_secret_value(), algorithm="HS256")
    return token, ttl


def decode_access_token(token: str, settings: Settings) -> AccessClaims:
    """The verified claims of an access token; InvalidToken (401) for anything else."""
    try:
        claims = jwt.decode(
            token,
            settings.jwt_signing_key.get_secret_value(),
            algorithms=["HS256"],
            audience=ACCESS_AUDIENCE,
            issuer=settings.jwt_issuer,
            leeway=LEEWAY_SECONDS,
            options={"require": ["exp", "iat", "sub", "aud", "iss", "typ"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken() from exc
    kind = claims.get("kind")
    if claims.get("typ") != ACCESS_TYPE or kind not in ("staff", "member"):
        raise InvalidToken("The token is not an access token.")
    subject = claims["sub"]
    version = claims.get("ver", 0)
    try:
        uuid.UUID(subject)
    except (TypeError, ValueError, AttributeError) as exc:
        raise InvalidToken("The token names no valid subject.") from exc
    if not isinstance(version, int):
        raise InvalidToken("The token carries a malformed version.")
    return AccessClaims(kind=kind, subject=subject, version=version, expires_at=int(claims["exp"]))


def new_secret() -> str:
    """256 random bits, URL-safe (refresh tokens, API key secrets)."""
    return secrets.token_urlsafe(32)


def sha256_hex(value: str) -> str:
    # A fast hash is enough for 256-bit random secrets: there is nothing to brute-force.
    return hashlib.sha256(value.encode()).hexdigest()
