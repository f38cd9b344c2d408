"""Access tokens are accepted only when they are exactly what the gateway issues."""

import base64
import json
import time
import uuid
from typing import Any

import jwt
import pytest

from services.common.identity import sign_internal_token
from services.common.settings import Settings
from services.gateway.auth.tokens import ACCESS_AUDIENCE, decode_access_token, issue_access_token
from tests.gateway.auth_helpers import bearer, get_me, login_tokens, make_staff
from tests.system import System, staff


def forge(system: System, *, key: str | None = None, algorithm: str = "HS256", **overrides: Any) -> str:
    """A token like the gateway's for a fresh subject, with some claims changed."""
    now = int(time.time())
    claims: dict[str, Any] = {
        "iss": system.settings.jwt_issuer,
        "aud": ACCESS_AUDIENCE,
        "typ": "access",
        "sub": str(uuid.uuid4()),
        "kind": "member",
        "iat": now,
        "exp": now + 600,
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode(claims, key or system.settings.jwt_signing_key.get_secret_value(), algorithm=algorithm)


async def assert_rejected(system: System, token: str) -> None:
    response = await get_me(system, bearer(token))
    assert response.status_code == 401, response.text
    assert response.headers["content-type"] == "application/problem+json"
    assert response.headers["www-authenticate"] == 'Bearer error="invalid_token"'


async def test_forged_token_baseline_is_accepted(system: System) -> None:
    # The forgeries below differ from this accepted token in one claim or header only.
    response = await get_me(system, bearer(forge(system)))
    assert response.status_code == 200
    assert response.json()["kind"] == "member"


async def test_refresh_token_is_not_an_access_token(system: System) -> None:
    await make_staff(system, "ops@example.com", "operator")
    tokens = await login_tokens(system, "ops@example.com")
    await assert_rejected(system, tokens["refresh_token"])


async def test_token_of_refresh_type_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, typ="refresh"))


async def test_token_without_type_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, typ=None))


async def test_alg_none_is_refused(system: System) -> None:
    header = base64.urlsafe_b64encode(json.dumps({"alg": "none", "typ": "JWT"}).encode()).rstrip(b"=")
    valid = forge(system)
    payload = valid.split(".")[1]
    await assert_rejected(system, f"{header.decode()}.{payload}.")


@pytest.mark.filterwarnings("ignore::jwt.warnings.InsecureKeyLengthWarning")
async def test_other_algorithm_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, algorithm="HS512"))


async def test_wrong_key_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, key="another-key-another-key-another-key-0123"))


async def test_wrong_audience_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, aud="someone-else"))


async def test_wrong_issuer_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, iss="https://evil.example"))


async def test_expired_token_is_refused(system: System) -> None:
    now = int(time.time())
    await assert_rejected(system, forge(system, iat=now - 3600, exp=now - 120))


async def test_token_issued_in_the_future_is_refused(system: System) -> None:
    now = int(time.time())
    await assert_rejected(system, forge(system, iat=now + 3600, exp=now + 7200))


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "aud", "iss"])
async def test_token_missing_a_claim_is_refused(system: System, missing: str) -> None:
    overrides: dict[str, Any] = {missing: None}
    await assert_rejected(system, forge(system, **overrides))


async def test_token_with_unknown_kind_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, kind="partner"))


async def test_token_with_malformed_subject_is_refused(system: System) -> None:
    await assert_rejected(system, forge(system, sub="not-a-uuid"))


async def test_internal_token_is_not_an_access_token(system: System) -> None:
    await assert_rejected(system, sign_internal_token(staff("admin"), system.settings))


async def test_garbage_is_refused(system: System) -> None:
    await assert_rejected(system, "not.a.jwt")


async def test_staff_token_for_unknown_account_is_refused(system: System) -> None:
    token, _ = issue_access_token(system.settings, "staff", str(uuid.uuid4()), version=1)
    await assert_rejected(system, token)


async def test_staff_token_of_an_old_version_is_refused(system: System) -> None:
    account = await make_staff(system, "ops@example.com", "operator")
    token, _ = issue_access_token(system.settings, "staff", account["id"], version=0)
    await assert_rejected(system, token)


def test_issued_token_round_trips() -> None:
    settings = Settings(env="test")
    subject = str(uuid.uuid4())
    token, ttl = issue_access_token(settings, "staff", subject, version=3)
    claims = decode_access_token(token, settings)
    assert (claims.kind, claims.subject, claims.version) == ("staff", subject, 3)
    assert ttl == settings.access_token_ttl_seconds
    assert jwt.get_unverified_header(token)["alg"] == "HS256"
