"""Every process answers health, readiness and metrics; services demand the internal token."""

import pytest

from services.common.observability import Metrics
from services.common.settings import DOMAIN_SERVICES, SERVICES
from tests.system import System, staff


@pytest.mark.parametrize("service", SERVICES)
async def test_health_readiness_and_metrics(system: System, service: str) -> None:
    async with system.direct(service) as client:
        assert (await client.get("/healthz")).json() == {"status": "ok"}
        assert (await client.get("/readyz")).json() == {"status": "ready"}
        metrics = await client.get("/metrics")
        assert metrics.status_code == 200
        assert "qunyun_http_requests_total" in metrics.text


@pytest.mark.parametrize("service", DOMAIN_SERVICES)
async def test_service_without_internal_token_is_401(system: System, service: str) -> None:
    async with system.direct(service) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 401
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["type"] == "https://qunyun.dev/problems/unauthorized"


@pytest.mark.parametrize("service", DOMAIN_SERVICES)
async def test_service_with_internal_token_serves_openapi(system: System, service: str) -> None:
    async with system.direct(service, staff("admin")) as client:
        response = await client.get("/openapi.json")
    assert response.status_code == 200
    assert response.json()["openapi"].startswith("3.1")


async def test_request_id_is_echoed_or_created(system: System) -> None:
    async with system.direct("members") as client:
        given = await client.get("/healthz", headers={"X-Request-ID": "abc-123"})
        made = await client.get("/healthz")
    assert given.headers["x-request-id"] == "abc-123"
    assert len(made.headers["x-request-id"]) == 32


async def test_unknown_route_is_problem_404(system: System) -> None:
    async with system.direct("members", staff("admin")) as client:
        response = await client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"] == "application/problem+json"


@pytest.mark.parametrize("service", DOMAIN_SERVICES)
async def test_unknown_route_without_token_is_still_401(system: System, service: str) -> None:
    async with system.direct(service) as client:
        response = await client.post("/v1/anything", json={})
    assert response.status_code == 401


async def test_request_metrics_count_each_route_template_and_status() -> None:
    metrics = Metrics("members")
    for status in (200, 200, 404):
        metrics.observe_request("GET", "/v1/members/{member_id}", status, 0.002)
    text = bytes(metrics.render().body).decode()
    labels = 'method="GET",route="/v1/members/{member_id}",service="members"'
    assert f'qunyun_http_requests_total{{{labels},status="200"}} 2.0' in text
    assert f'qunyun_http_requests_total{{{labels},status="404"}} 1.0' in text
    assert f"qunyun_http_request_duration_seconds_count{{{labels}}} 3.0" in text
