"""Every error a kit-built service gives is an RFC 9457 problem, and bad input changes nothing."""

from __future__ import annotations

from typing import Any

import httpx
import pytest

from services.common.problems import PROBLEM_MEDIA_TYPE, Problem, ProblemError, problem_responses
from services.feedback.db import kit_tables
from tests.common.kit import KitSystem
from tests.system import staff

PROBLEMS = "https://qunyun.dev/problems/"


def assert_problem(response: httpx.Response, status: int, slug: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    assert body["type"] == PROBLEMS + slug
    assert body["status"] == status
    assert body["title"]
    assert "instance" in body
    assert "detail" in body
    return body


async def assert_nothing_written(kit: KitSystem) -> None:
    assert await kit.rows(kit_tables.outbox) == []
    assert await kit.rows(kit_tables.idempotency_keys) == []


async def test_problem_error_renders_with_its_slug_and_status(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", json={"name": "conflict"})
    body = assert_problem(response, 409, "thing-conflict")
    assert body["detail"] == "Things called 'conflict' always conflict."
    assert body["instance"] == "/things"
    await assert_nothing_written(kit)


async def test_validation_error_lists_fields(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", json={"name": "", "count": -1})
    body = assert_problem(response, 422, "validation-error")
    locs = sorted(tuple(error["loc"]) for error in body["errors"])
    assert locs == [("body", "count"), ("body", "name")]
    assert all(set(error) == {"loc", "msg"} and error["msg"] for error in body["errors"])
    await assert_nothing_written(kit)


@pytest.mark.parametrize("raw", [b'{"name": "a",', b"not json", b'{"name": "a"} trailing'])
async def test_malformed_json_is_400_not_field_errors(kit: KitSystem, raw: bytes) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", content=raw, headers={"content-type": "application/json"})
    body = assert_problem(response, 400, "malformed-json")
    assert body["errors"][0]["loc"] == ["body"]
    await assert_nothing_written(kit)


@pytest.mark.parametrize("content_type", ["text/plain", "application/x-www-form-urlencoded", None])
async def test_json_route_refuses_other_content_types_with_415(kit: KitSystem, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", content=b'{"name": "a"}', headers=headers)
    body = assert_problem(response, 415, "unsupported-media-type")
    assert "application/json" in body["detail"]
    await assert_nothing_written(kit)


async def test_a_missing_body_is_a_422_field_error(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things")
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"][0]["loc"] == ["body"]


async def test_json_content_type_variants_are_accepted(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        plain = await client.post("/things", content=b'{"name": "a"}', headers={"content-type": "application/json"})
        charset = await client.post(
            "/things", content=b'{"name": "b"}', headers={"content-type": "application/json; charset=utf-8"}
        )
        suffixed = await client.post(
            "/things", content=b'{"name": "c"}', headers={"content-type": "application/merge-patch+json"}
        )
    assert [plain.status_code, charset.status_code, suffixed.status_code] == [201, 201, 201]


async def test_form_routes_keep_working_and_report_missing_fields_as_422(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        ok = await client.post("/things/form", data={"name": "x"})
        missing = await client.post("/things/form", data={})
    assert ok.status_code == 201
    assert ok.json() == {"name": "x"}
    assert_problem(missing, 422, "validation-error")


async def test_unknown_route_is_404_problem(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.get("/nowhere")
    assert_problem(response, 404, "not-found")


async def test_wrong_method_is_405_problem_with_allow(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.delete("/things")
    assert_problem(response, 405, "method-not-allowed")
    assert set(response.headers["allow"].replace(" ", "").split(",")) == {"GET", "POST"}


async def test_unhandled_exception_is_500_problem_without_internals(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.get("/things/boom", headers={"X-Request-ID": "req-boom-1"})
    body = assert_problem(response, 500, "internal-error")
    assert body["detail"] == "An unexpected error occurred."
    text = response.text
    for leak in ("Traceback", "RuntimeError", "hunter2", "/srv/secret", "kit.py"):
        assert leak not in text
    assert response.headers["x-request-id"] == "req-boom-1"


async def test_unhandled_exception_in_a_transaction_rolls_it_back(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", json={"name": "explode"})
    assert_problem(response, 500, "internal-error")
    await assert_nothing_written(kit)


async def test_nul_characters_postgres_cannot_store_are_422_and_change_nothing(kit: KitSystem) -> None:
    """Schemathesis found these as 500s: Postgres refuses `\\u0000` in text and jsonb."""
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", json={"name": "tea\u0000pot"}, headers={"Idempotency-Key": "nul-1"})
        body = assert_problem(response, 422, "invalid-text")
        assert "NUL" in body["detail"]
        await assert_nothing_written(kit)
        # The key was released with the rollback: the corrected request goes through.
        fixed = await client.post("/things", json={"name": "teapot"}, headers={"Idempotency-Key": "nul-1"})
        assert fixed.status_code == 201


async def test_other_database_errors_stay_500(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        response = await client.post("/things", json={"name": "bad-sql"})
    body = assert_problem(response, 500, "internal-error")
    assert "no_such_table" not in response.text
    assert body["detail"] == "An unexpected error occurred."
    await assert_nothing_written(kit)


async def test_the_service_keeps_answering_after_a_500(kit: KitSystem) -> None:
    async with kit.client(staff("operator")) as client:
        assert (await client.get("/things/boom")).status_code == 500
        assert (await client.post("/things", json={"name": "fine"})).status_code == 201


def test_problem_error_carries_extra_members() -> None:
    error = ProblemError("Not enough.", status=409, slug="insufficient-points", title="Insufficient points", needed=5)
    assert (error.status_code, error.type_slug, error.problem_title, error.extra) == (
        409,
        "insufficient-points",
        "Insufficient points",
        {"needed": 5},
    )


async def test_problem_responses_appear_in_openapi(kit: KitSystem) -> None:
    async with kit.client(staff("admin")) as client:
        document = (await client.get("/openapi.json")).json()
    answers = document["paths"]["/things"]["post"]["responses"]
    for status in ("409", "415", "422"):
        assert PROBLEM_MEDIA_TYPE in answers[status]["content"]
    assert "Problem" in document["components"]["schemas"]
    assert set(problem_responses(404)[404]) >= {"model", "description", "content"}
    assert Problem.model_validate({"type": PROBLEMS + "x", "title": "X", "status": 400}).detail is None
