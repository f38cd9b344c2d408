"""One merged OpenAPI 3.1 document at the gateway, and docs pages that work offline."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import jsonschema_rs
import pytest
import pytest_asyncio
from schemathesis.specs.openapi.definitions import OPENAPI_31

from services.common.identity import INTERNAL_TOKEN_HEADER, SYSTEM, sign_internal_token
from services.common.problems import PROBLEM_MEDIA_TYPE
from services.common.settings import DOMAIN_SERVICES
from services.gateway.openapi import BODY_PROBLEM_STATUSES, PROBLEM_STATUSES, PUBLIC_OPERATIONS
from tests.gateway.edge_support import EdgeGateway, echo_service_app, edge_gateway
from tests.system import System

METHODS = {"get", "put", "post", "delete", "patch", "head", "options", "trace"}


@pytest_asyncio.fixture(scope="module", loop_scope="session")
async def edge() -> AsyncIterator[EdgeGateway]:
    async with edge_gateway() as running:
        yield running


def assert_valid_openapi_31(document: dict[str, Any]) -> None:
    errors = [str(e) for e in jsonschema_rs.Draft202012Validator(OPENAPI_31).iter_errors(document)]
    assert errors == []
    assert document["openapi"].startswith("3.1.")
    defined = set(document["components"]["schemas"])
    for ref in refs(document):
        assert ref.startswith("#/components/"), ref
        section, name = ref.split("/")[2:4]
        assert name in document["components"][section], ref
    assert "Problem" in defined


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def operations(document: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in document["paths"].items():
        for method, operation in item.items():
            if method in METHODS:
                yield path, method, operation


async def service_documents(transport: Any, settings: Any) -> dict[str, dict[str, Any]]:
    documents: dict[str, dict[str, Any]] = {}
    headers = {INTERNAL_TOKEN_HEADER: sign_internal_token(SYSTEM, settings)}
    async with httpx.AsyncClient(transport=transport, headers=headers) as client:
        for service in DOMAIN_SERVICES:
            documents[service] = (await client.get(f"http://{service}/openapi.json")).json()
    return documents


async def test_merged_document_is_valid_31_with_every_service_path(edge: EdgeGateway) -> None:
    async with edge.client() as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    document = response.json()
    assert_valid_openapi_31(document)
    own = await service_documents(edge.transport, edge.settings)
    for service, service_document in own.items():
        for path, item in service_document["paths"].items():
            for method in set(item) & METHODS:
                if path.startswith("/v1/"):
                    assert document["paths"][path][method]["x-service"] == service
                else:
                    assert path not in document["paths"]
    assert "/v1/members/{member_id}/points" in document["paths"]
    assert not [p for p in document["paths"] if not p.startswith("/v1/")]  # no /internal, /healthz, /openapi.json


async def test_colliding_schemas_are_renamed_and_refs_follow(edge: EdgeGateway) -> None:
    async with edge.client() as client:
        document = (await client.get("/openapi.json")).json()
    schemas = document["components"]["schemas"]
    members_body = document["paths"]["/v1/members"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    content_body = document["paths"]["/v1/posts"]["post"]["requestBody"]["content"]["application/json"]["schema"]
    assert members_body == {"$ref": "#/components/schemas/ThingCreate"}
    assert content_body == {"$ref": "#/components/schemas/ContentThingCreate"}
    assert set(schemas["ThingCreate"]["properties"]) == {"external_id", "display_name"}
    assert set(schemas["ContentThingCreate"]["properties"]) == {"title", "body"}
    assert "HTTPValidationError" not in schemas  # 422 answers are problems, FastAPI's shape is gone


async def test_every_operation_has_security_problems_and_a_service_tag(edge: EdgeGateway) -> None:
    async with edge.client() as client:
        document = (await client.get("/openapi.json")).json()
    schemes = document["components"]["securitySchemes"]
    assert schemes["HTTPBearer"] == {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": schemes["HTTPBearer"]["description"],
    }
    assert schemes["APIKeyHeader"]["type"] == "apiKey"
    assert schemes["APIKeyHeader"]["in"] == "header"
    assert schemes["APIKeyHeader"]["name"] == "X-API-Key"
    tag_names = {t["name"] for t in document["tags"]}
    assert set(DOMAIN_SERVICES) <= tag_names
    assert {g["name"] for g in document["x-tagGroups"]} >= set(DOMAIN_SERVICES)
    seen = 0
    for path, method, operation in operations(document):
        seen += 1
        if (method, path) in PUBLIC_OPERATIONS:
            assert "security" not in operation, (method, path)
        else:
            assert operation["security"] == [{"HTTPBearer": []}, {"APIKeyHeader": []}], (method, path)
        assert operation["tags"], (method, path)
        for status in PROBLEM_STATUSES:
            content = operation["responses"][str(status)]["content"]
            assert content[PROBLEM_MEDIA_TYPE]["schema"] == {"$ref": "#/components/schemas/Problem"}, (status, path)
        assert "Retry-After" in operation["responses"]["429"]["headers"]
        # A body that does not parse, is too large or is not JSON is a problem too (schemathesis found
        # undeclared 400s): declared wherever a body is taken.
        for status in BODY_PROBLEM_STATUSES:
            declared = str(status) in operation["responses"]
            assert declared == ("requestBody" in operation), (status, method, path)
    assert seen > 10
    assert document["servers"]


async def test_document_is_cached_and_rebuilt_when_the_table_changes() -> None:
    async with edge_gateway(mount=("rewards", "content", "feedback")) as running:
        async with running.client() as client:
            first = (await client.get("/openapi.json")).json()
            assert (await client.get("/openapi.json")).content == (await client.get("/openapi.json")).content
            late = echo_service_app("members", running.settings)
            async with late.router.lifespan_context(late):
                running.transport.mount("members", late)
                running.gateway.state.routes._next_refresh_at = 0.0
                second = (await client.get("/openapi.json")).json()
    assert "/v1/members/{member_id}" not in first["paths"]
    assert "/v1/members/{member_id}" in second["paths"]
    assert_valid_openapi_31(second)


async def test_real_system_document_is_valid_and_complete(system: System) -> None:
    async with system.anonymous() as client:
        response = await client.get("/openapi.json")
    document = response.json()
    assert_valid_openapi_31(document)
    own = await service_documents(system.transport, system.settings)
    expected = {(p, m) for d in own.values() for p, item in d["paths"].items() if p.startswith("/v1/") for m in item}
    assert expected <= {(p, m) for p, m, _ in operations(document)}


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
async def test_docs_pages_load_no_remote_assets(system: System, page: str) -> None:
    async with system.anonymous() as client:
        response = await client.get(page)
        assert response.status_code == 200
        html = response.text
        assert re.findall(r"https?://|//cdn|googleapis", html) == []
        assets = re.findall(r"""(?:src|href)=["']([^"']+)["']""", html) + re.findall(r"""url: ?["']([^"']+)""", html)
        local = [a for a in assets if a.startswith("/docs/static/")]
        assert local
        for asset in local:
            loaded = await client.get(asset)
            assert loaded.status_code == 200, asset
            assert len(loaded.content) > 0
        assert "/openapi.json" in html
