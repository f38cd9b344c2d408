"""Logs are JSON lines with the request id, and never carry credentials or emails."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

import pytest
import pytest_asyncio
import structlog

from services.common.observability import _json_line, configure_logging, redact_sensitive
from tests.common.kit import KitDatabases, KitSystem, kit_system
from tests.system import staff

SECRETS = ("sk_live_abc123", "qk_secret_key_987", "alice@example.com", "hunter2")


@pytest_asyncio.fixture
async def loud_kit(kit_dbs: KitDatabases) -> AsyncIterator[KitSystem]:
    """A kit system logging at INFO (the suite runs at WARNING)."""
    try:
        async with kit_system(kit_dbs, log_level="INFO") as kit:
            yield kit
    finally:
        configure_logging("WARNING", True)


def json_lines(text: str) -> list[dict[str, Any]]:
    lines = [line for line in text.splitlines() if line.strip()]
    return [json.loads(line) for line in lines]  # every line is JSON


async def test_request_logs_are_json_with_the_request_id_and_no_secrets(
    loud_kit: KitSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    async with loud_kit.client(staff("operator")) as client:
        response = await client.post(
            "/things/log",
            json={"email": "alice@example.com"},
            headers={
                "X-Request-ID": "req-log-1",
                "Authorization": "Bearer sk_live_abc123",
                "X-API-Key": "qk_secret_key_987",
            },
        )
    assert response.status_code == 204
    output = capsys.readouterr().err
    records = json_lines(output)
    access = [r for r in records if r["event"] == "request" and r.get("route") == "/things/log"]
    assert len(access) == 1
    assert access[0]["request_id"] == "req-log-1"
    assert (access[0]["method"], access[0]["status"]) == ("POST", 204)
    assert "duration_ms" in access[0]
    careless = [r for r in records if r["event"] == "careless_log"]
    assert len(careless) == 1
    assert careless[0]["request_id"] == "req-log-1"
    assert careless[0]["headers"]["authorization"] == "[redacted]"
    assert careless[0]["headers"]["x-internal-token"] == "[redacted]"
    for secret in SECRETS:
        assert secret not in output


async def test_an_unhandled_error_is_logged_with_its_trace_and_request_id_but_no_secrets(
    loud_kit: KitSystem, capsys: pytest.CaptureFixture[str]
) -> None:
    capsys.readouterr()
    async with loud_kit.client(staff("operator")) as client:
        response = await client.get("/things/boom", headers={"X-Request-ID": "req-boom-2"})
    assert response.status_code == 500
    records = json_lines(capsys.readouterr().err)
    (error,) = [r for r in records if r["event"] == "unhandled_error"]
    assert error["request_id"] == "req-boom-2"
    assert error["route"] == "/things/boom"
    assert "RuntimeError" in error["exception"]  # operators get the trace
    assert "hunter2" not in json.dumps(error)


async def test_nested_in_process_requests_restore_the_outer_request_id(loud_kit: KitSystem) -> None:
    structlog.contextvars.bind_contextvars(request_id="outer")
    try:
        async with loud_kit.client(staff("operator")) as client:
            await client.get("/things", headers={"X-Request-ID": "inner"})
        assert structlog.contextvars.get_contextvars()["request_id"] == "outer"
    finally:
        structlog.contextvars.unbind_contextvars("request_id")


async def test_an_invalid_request_id_is_replaced(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.get("/things", headers={"X-Request-ID": "bad id with spaces;"})
    assert response.headers["x-request-id"] != "bad id with spaces"
    assert len(response.headers["x-request-id"]) == 32


@pytest.mark.parametrize(
    ("logged", "leaked"),
    [
        ("retrying with PASSWORD=hunter2", "hunter2"),
        ("upstream said Authorization: BEARER sk_live_abc123", "sk_live_abc123"),
        ("Api-Key: qk_secret_key_987", "qk_secret_key_987"),
        ("mail to ALICE@EXAMPLE.COM failed", "ALICE@EXAMPLE.COM"),
    ],
)
def test_redaction_ignores_case(logged: str, leaked: str) -> None:
    line = redact_sensitive(None, "info", {"event": logged, "attempt": 2, "ok": False, "took": 0.5})
    assert leaked not in line["event"]
    assert "[redacted]" in line["event"]
    assert (line["attempt"], line["ok"], line["took"]) == (2, False, 0.5)


def test_log_lines_render_what_the_standard_library_would_refuse_or_garble() -> None:
    member_id = uuid.UUID("9a4b3623-5ba0-48b6-0000-000033847200")
    line = _json_line({"event": "x", "counts": {member_id: 1}, "id": member_id}, default=repr)
    assert json.loads(line) == {"event": "x", "counts": {str(member_id): 1}, "id": str(member_id)}
    # Beyond orjson's 64 bits: the standard library's rendering, not a lost line.
    assert json.loads(_json_line({"event": "x", "big": 2**70}, default=repr)) == {"event": "x", "big": 2**70}
