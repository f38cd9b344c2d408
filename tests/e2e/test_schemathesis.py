"""Schemathesis against the running system: one `qunyun up`, the gateway's merged
`/openapi.json`, every operation fuzzed as an admin, a member and a partner.

No generated request may get a 5xx. Besides `not_a_server_error`, the checks below hold
for the whole API and are enforced too. Not enforced, and why:
- `positive_data_acceptance`: validators are stricter than the document can say (exactly one
  of `member_id`/`external_id`, IANA zone names, PATCH fields that may be left out but not
  be null), so some schema-valid bodies are rightly 422;
- `negative_data_rejection`: pydantic's lax mode takes `0` for a date-time, and
  `/v1/events/batch` answers 200 with per-item rejections by design;
- `unsupported_method`, `allow_header_conformance`: `PATCH /v1/rewards/levels` reaches
  `PATCH /v1/rewards/{reward_id}` (in the gateway's table, as in Starlette, a template that
  lacks the method falls back to a less specific one), so it is a 422, not a 405, and the
  405s there advertise PATCH;
- `ensure_resource_availability`: its stateful links pair a new community with a member
  that does not exist and call the 404 a lost resource.

Each run is bounded (`-n` examples per operation, fixed seed; `QUNYUN_ST_EXAMPLES` and
`QUNYUN_ST_SEED` change them). The admin run has every phase. The member and partner runs
skip the coverage phase: its boundary values are about request validation, which the admin
run already drives into every handler (an admin may call everything), and they were three
quarters of each run's requests (4,767 of 6,450 as admin, about 40 s of CPU per role).
Their generated examples, fuzzing and stateful phases still reach every handler a member or
partner may call. All the runs share one system, on one xdist worker (tests/conftest.py,
`SHARED_SYSTEM_MODULES`).
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.runner import QunyunRun, scratch_dir, start_qunyun

pytestmark = pytest.mark.e2e

ST = Path(sys.executable).with_name("st")
CHECKS = (
    "not_a_server_error",
    "status_code_conformance",
    "content_type_conformance",
    "response_headers_conformance",
    "response_schema_conformance",
    "missing_required_header",
    "use_after_free",
    "ignored_auth",
)
EXAMPLES = os.environ.get("QUNYUN_ST_EXAMPLES", "15")
SEED = os.environ.get("QUNYUN_ST_SEED", "1")
# What the member and partner runs do (see the module's docstring).
ROLE_PHASES = os.environ.get("QUNYUN_ST_ROLE_PHASES", "examples,fuzzing,stateful")
# Changing a staff account's password or roles revokes its tokens: fuzzed last, on its own.
STAFF_PATCH = r"^/v1/staff/\{staff_id\}$"
ALL_SCOPES = [
    "read",
    "members:read",
    "members:write",
    "members:token",
    "events:write",
    "content:read",
    "content:write",
    "rewards:read",
    "rewards:write",
    "tickets:read",
    "tickets:write",
    "moderation:write",
]


@pytest.fixture(scope="module")
def running() -> Iterator[QunyunRun]:
    with scratch_dir("qunyun-schemathesis-") as workdir, start_qunyun(workdir) as run:
        wait_for_merged_document(run)
        yield run


def wait_for_merged_document(run: QunyunRun, timeout: float = 30) -> None:
    """Until the gateway's document holds the services' paths (it fetches them as they come up)."""
    deadline = time.monotonic() + timeout
    with run.client() as gateway:
        while True:
            paths = gateway.get("/openapi.json").json()["paths"]
            if {"/v1/members", "/v1/rewards", "/v1/auth/token"} <= set(paths):
                return
            assert time.monotonic() < deadline, f"merged document incomplete: {sorted(paths)}"
            time.sleep(0.5)


def schemathesis(run: QunyunRun, credentials: str, *options: str, timeout: float = 240) -> None:
    """Run the CLI as one caller; fail with its report if any check failed."""
    command = [
        str(ST),
        "run",
        f"{run.base_url}/openapi.json",
        "--header",
        credentials,
        # Send only our credentials: a generated X-API-Key beside the bearer token is a 401.
        "--generation-with-security-parameters",
        "false",
        "--checks",
        ",".join(CHECKS),
        "--max-examples",
        EXAMPLES,
        "--seed",
        SEED,
        "--generation-database",
        "none",
        "--request-timeout",
        "10",
        "--no-color",
        *options,
    ]
    result = subprocess.run(
        command, cwd=run.data_dir.parent, capture_output=True, text=True, timeout=timeout, check=False
    )
    report = result.stdout + result.stderr
    assert result.returncode == 0, report[-20000:]
    assert "generated" in report, report[-5000:]
    assert "Server error" not in report, report[-20000:]


def test_no_server_errors_as_admin(running: QunyunRun) -> None:
    headers = running.admin_headers()
    schemathesis(running, f"Authorization: {headers['Authorization']}", "--exclude-path-regex", STAFF_PATCH)


def test_no_server_errors_as_member(running: QunyunRun) -> None:
    with running.client(headers=running.admin_headers()) as admin:
        community = admin.post("/v1/communities", json={"name": "Fuzzed"}).json()
        member = admin.post("/v1/members", json={"external_id": "st-member", "display_name": "Fuzz"}).json()
        admin.post(f"/v1/communities/{community['id']}/members", json={"member_id": member["id"]})
        token = admin.post("/v1/auth/member-token", json={"member_id": member["id"]}).json()["access_token"]
    schemathesis(running, f"Authorization: Bearer {token}", "--phases", ROLE_PHASES)


def test_no_server_errors_as_partner(running: QunyunRun) -> None:
    with running.client(headers=running.admin_headers()) as admin:
        key = admin.post("/v1/api-keys", json={"name": "fuzzer", "scopes": ALL_SCOPES}).json()["key"]
    schemathesis(running, f"X-API-Key: {key}", "--phases", ROLE_PHASES)


def test_no_server_errors_changing_staff_accounts(running: QunyunRun) -> None:
    """Last: the fuzzer may change the admin's own password, after which it gets only 401s."""
    headers = running.admin_headers()
    with running.client(headers=headers) as admin:
        created = admin.post(
            "/v1/staff",
            json={
                "email": "fuzz@example.com",
                "display_name": "Fuzz",
                "password": "fuzz-password-1",
                "roles": ["agent"],
            },
        )
        assert created.status_code == 201, created.text
    schemathesis(
        running,
        f"Authorization: {headers['Authorization']}",
        "--include-path-regex",
        STAFF_PATCH,
    )
