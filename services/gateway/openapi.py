"""One OpenAPI 3.1 document for the whole public API, merged at the gateway.

The gateway's own routes come first, then every service's `/v1` paths with the
component schemas they use. Schemas that share a name but differ between documents
are renamed `<Service><Name>` and every `$ref` of that service follows. Every operation
gets the security schemes (bearer JWT, `X-API-Key`), the shared `Problem` answers and a
tag per service. The merged document is cached until the route table changes.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Iterable, Mapping
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from services.common.problems import PROBLEM_MEDIA_TYPE, Problem, problem_responses
from services.common.settings import Settings
from services.gateway.routing import PUBLIC_PREFIX, RouteTableLoader

OPENAPI_VERSION = "3.1.0"
REF_PREFIX = "#/components/schemas/"
PROBLEM_STATUSES = (401, 403, 404, 422, 429, 503, 504)
# What any operation taking a body may also answer: a body that does not parse (400), one
# over the gateway's size limit (413), one that is not JSON where JSON is expected (415).
BODY_PROBLEM_STATUSES = (400, 413, 415)
HTTP_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")
# The same class everywhere (services.common): never renamed, first definition kept.
SHARED_SCHEMAS = frozenset({"Problem", "FieldError"})
GATEWAY_TAG = "gateway"

SECURITY_SCHEMES: dict[str, Any] = {
    "HTTPBearer": {
        "type": "http",
        "scheme": "bearer",
        "bearerFormat": "JWT",
        "description": "Staff or member access token (`POST /v1/auth/token`, `POST /v1/auth/member-token`).",
    },
    "APIKeyHeader": {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "A partner API key (`POST /v1/api-keys`).",
    },
}
DEFAULT_SECURITY: list[dict[str, list[str]]] = [{"HTTPBearer": []}, {"APIKeyHeader": []}]
# Gateway operations that need no credentials (API.md: "anyone").
PUBLIC_OPERATIONS = frozenset({("post", "/v1/auth/token"), ("post", "/v1/auth/refresh"), ("post", "/v1/auth/revoke")})

RATE_LIMIT_HEADERS: dict[str, Any] = {
    "RateLimit-Policy": {
        "description": 'The quota policy, e.g. `"default";q=600;w=60` (draft-ietf-httpapi-ratelimit-headers).',
        "schema": {"type": "string"},
    },
    "RateLimit": {
        "description": 'Remaining quota and seconds until it resets, e.g. `"default";r=599;t=42`.',
        "schema": {"type": "string"},
    },
    "Retry-After": {"description": "Seconds to wait before retrying.", "schema": {"type": "integer"}},
}


def problem_schemas() -> dict[str, Any]:
    """The canonical `Problem` (and `FieldError`) component schemas."""
    _, top = models_json_schema([(Problem, "serialization")], ref_template=REF_PREFIX + "{model}")
    return dict(top["$defs"])


def _rewrite_refs(node: Any, renames: Mapping[str, str]) -> Any:
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                name = value[len(REF_PREFIX) :]
                out[key] = REF_PREFIX + renames.get(name, name)
            else:
                out[key] = _rewrite_refs(value, renames)
        return out
    if isinstance(node, list):
        return [_rewrite_refs(item, renames) for item in node]
    return node


def _refs(node: Any) -> Iterable[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str) and value.startswith(REF_PREFIX):
                yield value[len(REF_PREFIX) :]
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from _refs(item)


def _problem_response(status: int) -> dict[str, Any]:
    declared = problem_responses(status)[status]
    response: dict[str, Any] = {"description": declared["description"], "content": declared["content"]}
    if status == 429:
        response["headers"] = {name: {"$ref": f"#/components/headers/{name}"} for name in RATE_LIMIT_HEADERS}
    elif status == 503:
        response["headers"] = {"Retry-After": {"$ref": "#/components/headers/Retry-After"}}
    return response


class _Merger:
    def __init__(self) -> None:
        self.schemas: dict[str, Any] = problem_schemas()
        self.paths: dict[str, dict[str, Any]] = {}
        self.operation_ids: set[str] = set()
        self.tag_groups: dict[str, list[str]] = {}
        self.webhooks: dict[str, Any] = {}  # the gateway's event catalogue (OpenAPI 3.1 `webhooks`)

    def _renames(self, service: str, schemas: Mapping[str, Any]) -> dict[str, str]:
        """Names of this document's schemas that must change to not clash with different ones."""
        renames: dict[str, str] = {}
        changed = True
        while changed:  # a schema pointing at a renamed one differs too: repeat until stable
            changed = False
            for name, schema in schemas.items():
                if name in renames or name in SHARED_SCHEMAS or name not in self.schemas:
                    continue
                if _rewrite_refs(schema, renames) != self.schemas[name]:
                    new = f"{service.capitalize()}{name}"
                    while new in self.schemas or new in schemas:
                        new = f"{service.capitalize()}{new}"
                    renames[name] = new
                    changed = True
        return renames

    def add(self, service: str, document: Mapping[str, Any], *, gateway: bool = False) -> None:
        document = copy.deepcopy(dict(document))
        schemas: dict[str, Any] = document.get("components", {}).get("schemas", {})
        renames = self._renames(service, schemas)
        document = _rewrite_refs(document, renames)
        for name, schema in document.get("components", {}).get("schemas", {}).items():
            self.schemas.setdefault(renames.get(name, name), schema)
        if gateway:
            self.webhooks = document.get("webhooks") or {}
            for item in self.webhooks.values():
                for operation in item.values():
                    # FastAPI adds its own 422 to every operation; a partner's receiver answers 2xx or not.
                    operation.get("responses", {}).pop("422", None)
        for template, item in (document.get("paths") or {}).items():
            if not template.startswith(PUBLIC_PREFIX):
                continue
            merged_item = self.paths.setdefault(template, {})
            for key, value in item.items():
                if key in merged_item:
                    continue  # the gateway's own operation wins over a proxied one
                if key in HTTP_METHODS:
                    value = self._operation(service, key, template, value, gateway=gateway)
                merged_item[key] = value

    def _operation(
        self, service: str, method: str, template: str, operation: dict[str, Any], *, gateway: bool
    ) -> dict[str, Any]:
        operation.setdefault("tags", [service])
        group = self.tag_groups.setdefault(service, [])
        group.extend(t for t in operation["tags"] if t not in group)
        operation["x-service"] = service
        if "security" not in operation and not (gateway and (method, template) in PUBLIC_OPERATIONS):
            operation["security"] = DEFAULT_SECURITY
        operation_id = operation.get("operationId")
        if operation_id:
            while operation_id in self.operation_ids:
                operation_id = f"{service}_{operation_id}"
            operation["operationId"] = operation_id
            self.operation_ids.add(operation_id)
        responses = operation.setdefault("responses", {})
        statuses = (*PROBLEM_STATUSES, *BODY_PROBLEM_STATUSES) if "requestBody" in operation else PROBLEM_STATUSES
        for status in statuses:
            existing = responses.get(str(status))
            # FastAPI documents its own 422 body; ours is a problem (services.common.problems).
            if existing is None or (status == 422 and PROBLEM_MEDIA_TYPE not in existing.get("content", {})):
                responses[str(status)] = _problem_response(status)
        return operation

    def reachable_schemas(self) -> dict[str, Any]:
        """Only the schemas the paths use (directly or through other schemas), in name order."""
        seen: set[str] = set()
        pending = [*_refs(self.paths), *_refs(self.webhooks), "Problem"]
        while pending:
            name = pending.pop()
            if name in seen or name not in self.schemas:
                continue
            seen.add(name)
            pending.extend(_refs(self.schemas[name]))
        return {name: self.schemas[name] for name in sorted(seen)}


def merge_documents(
    gateway_document: Mapping[str, Any],
    service_documents: Mapping[str, Mapping[str, Any]],
    settings: Settings,
) -> dict[str, Any]:
    """The public document: gateway routes, then each service's `/v1` paths (see module docstring)."""
    merger = _Merger()
    merger.add(GATEWAY_TAG, gateway_document, gateway=True)
    for service, document in service_documents.items():
        merger.add(service, document)

    descriptions = {GATEWAY_TAG: "Authentication, access, composed views and partner webhooks."}
    descriptions.update(
        {service: doc.get("info", {}).get("description", "") for service, doc in service_documents.items()}
    )
    tags: list[dict[str, str]] = []
    for group, names in merger.tag_groups.items():
        for name in names:
            if name not in {t["name"] for t in tags}:
                tag = {"name": name}
                if name == group and descriptions.get(group):
                    tag["description"] = descriptions[group]
                tags.append(tag)
    servers = [{"url": settings.gateway_url, "description": "Qunyun gateway"}] if settings.gateway_url else []
    servers.append({"url": "/", "description": "This gateway"})
    return {
        "openapi": OPENAPI_VERSION,
        "info": {
            "title": gateway_document.get("info", {}).get("title", "Qunyun"),
            "version": gateway_document.get("info", {}).get("version", "1.0.0"),
            "description": "The public API of Qunyun: every service behind one gateway. "
            "Errors are RFC 9457 problem details; every answer carries RateLimit fields.",
        },
        "servers": servers,
        "paths": dict(sorted(merger.paths.items())),
        "webhooks": merger.webhooks,
        "components": {
            "schemas": merger.reachable_schemas(),
            "securitySchemes": {
                **gateway_document.get("components", {}).get("securitySchemes", {}),
                **SECURITY_SCHEMES,
            },
            "headers": RATE_LIMIT_HEADERS,
        },
        "tags": tags,
        "x-tagGroups": [{"name": group, "tags": names} for group, names in merger.tag_groups.items()],
    }


class MergedOpenAPI:
    """The merged document, rebuilt only when the route table has changed."""

    def __init__(self, app: FastAPI, loader: RouteTableLoader, settings: Settings) -> None:
        self.app = app
        self.loader = loader
        self.settings = settings
        self._version = -1
        self._document: dict[str, Any] = {}
        self._rendered = b""

    def gateway_document(self) -> dict[str, Any]:
        return get_openapi(
            title=self.app.title,
            version=self.app.version,
            openapi_version=OPENAPI_VERSION,
            routes=self.app.routes,
            webhooks=self.app.webhooks.routes,
        )

    async def document(self) -> dict[str, Any]:
        if self.loader.missing:
            await self.loader.refresh_if_due()
        if self._version != self.loader.version:
            services = {s: self.loader.documents[s] for s in self.loader.services if s in self.loader.documents}
            self._document = merge_documents(self.gateway_document(), services, self.settings)
            self._rendered = json.dumps(self._document, separators=(",", ":")).encode()
            self._version = self.loader.version
        return self._document

    async def rendered(self) -> bytes:
        """The document as JSON bytes (rendered once per rebuild)."""
        await self.document()
        return self._rendered
