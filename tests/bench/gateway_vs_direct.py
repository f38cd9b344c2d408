"""Gateway hop vs straight to the service, and event ingest through the gateway.

`python -m tests.bench.gateway_vs_direct [--seconds 10] [--concurrency 64] [--transports aiohttp,httpx]`

Starts members and the gateway as real uvicorn processes on free 127.0.0.1 ports over a
temporary Postgres database (dropped afterwards), creates a community and a member, then
drives `GET /v1/members/{id}` straight to members (internal token) and through the gateway
at a fixed concurrency from a separate load process, and prints req/s, p50, p99 side by
side. Then posts `POST /v1/events/batch` (1000 events each) through the gateway and prints
events/s. Targets: gateway >= 70 % of direct throughput, <= 3 ms added at p99, ingest >=
30,000 events/s.

Until the auth and members work is merged, the bench says so and uses what exists: the
caller comes through the gateway's `app.state.identify_caller` seam, members answers
`GET /v1/members/{id}` from a bench stand-in route (tests/bench/_apps.py), and the ingest
part is skipped.
"""

from __future__ import annotations

import argparse
import os
import secrets
import sys
import uuid
from typing import Any

import httpx

from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, sign_internal_token
from services.common.settings import Settings
from services.members import app as members_app
from tests.bench._apps import BENCH_ADMIN, BENCH_CALLER_HEADER, auth_merged, members_has_member_read
from tests.bench._harness import free_port, load, temporary_databases, uvicorn

TOKEN_TTL_SECONDS = 3600  # the direct run reuses one internal token for the whole bench


def login(gateway: str, email: str, password: str) -> tuple[dict[str, str], Identity]:
    response = httpx.post(f"{gateway}/v1/auth/token", data={"username": email, "password": password}, timeout=10)
    response.raise_for_status()
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    me = httpx.get(f"{gateway}/v1/me", headers=headers, timeout=10).json()
    identity = Identity(kind=me["kind"], id=me["id"], roles=tuple(me.get("roles") or ()))
    return headers, identity


def create_member(gateway: str, headers: dict[str, str]) -> tuple[str, str | None]:
    """(member id, community id) made through the public API, or a random id on the stand-in."""
    if not members_has_member_read(members_app.create_app()):
        return str(uuid.uuid4()), None
    community = httpx.post(f"{gateway}/v1/communities", json={"name": "Bench"}, headers=headers, timeout=10)
    community.raise_for_status()
    member = httpx.post(
        f"{gateway}/v1/members",
        json={"external_id": f"bench-{secrets.token_hex(4)}", "display_name": "Bench Member"},
        headers=headers,
        timeout=10,
    )
    member.raise_for_status()
    return str(member.json()["id"]), str(community.json()["id"])


def median_run(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """The run with the median throughput (its latencies come with it)."""
    return sorted(runs, key=lambda r: r["rps"])[len(runs) // 2]


def row(name: str, figures: dict[str, Any]) -> str:
    return (
        f"{name:<28} {figures['rps']:>9.0f} {figures['p50_ms']:>8.2f} {figures['p99_ms']:>8.2f}"
        f"   {figures['requests']:>7} ok={figures['statuses']} errors={figures['errors']}"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0, help="length of one run")
    parser.add_argument("--rounds", type=int, default=3, help="direct/gateway runs alternate this many times")
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--transports", default="aiohttp", help="gateway transports to compare: aiohttp,httpx")
    parser.add_argument("--pool", type=int, default=200, help="gateway upstream pool size")
    parser.add_argument("--batch-seconds", type=float, default=10.0)
    parser.add_argument("--batch-concurrency", type=int, default=4)
    args = parser.parse_args(argv)

    email, password = "bench-admin@qunyun.local", secrets.token_urlsafe(18)
    members_port, gateway_port = free_port(), free_port()
    real_auth = auth_merged()
    print(f"auth: {'real (POST /v1/auth/token)' if real_auth else 'not merged: bench caller via app.state seam'}")

    with temporary_databases(["gateway", "members"]) as database_url:
        env = {
            **os.environ,
            "QUNYUN_DATABASE_URL": database_url,
            "QUNYUN_MEMBERS_URL": f"http://127.0.0.1:{members_port}",
            # Not started here: point them at closed ports, never at whatever listens on the defaults.
            **{
                f"QUNYUN_{s.upper()}_URL": f"http://127.0.0.1:{free_port()}" for s in ("content", "rewards", "feedback")
            },
            "QUNYUN_GATEWAY_URL": f"http://127.0.0.1:{gateway_port}",
            "QUNYUN_RATE_LIMIT": "1000000000/minute",
            "QUNYUN_LOG_LEVEL": "WARNING",
            "QUNYUN_ADMIN_EMAIL": email,
            "QUNYUN_ADMIN_PASSWORD": password,
            "QUNYUN_INTERNAL_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS),
            "QUNYUN_BENCH_POOL": str(args.pool),
            "PYTHONPATH": os.getcwd(),
        }
        settings = Settings(internal_token_ttl_seconds=TOKEN_TTL_SECONDS)
        with uvicorn("tests.bench._apps:members", members_port, env) as members:
            runs: dict[str, list[dict[str, Any]]] = {}
            ingest: dict[str, Any] | None = None
            member_id, community_id = "", None
            for transport in args.transports.split(","):
                gateway_env = {**env, "QUNYUN_BENCH_TRANSPORT": transport}
                with uvicorn("tests.bench._apps:gateway", gateway_port, gateway_env) as gateway:
                    if real_auth:
                        headers, identity = login(gateway, email, password)
                    else:
                        headers, identity = {BENCH_CALLER_HEADER: "admin"}, BENCH_ADMIN
                    if not member_id:
                        member_id, community_id = create_member(gateway, headers)
                    direct_headers = {INTERNAL_TOKEN_HEADER: sign_internal_token(identity, settings)}
                    # Direct and gateway runs alternate, so a neighbour's load burst hits both alike.
                    for _ in range(args.rounds):
                        for name, url, hdrs in (
                            ("direct", f"{members}/v1/members/{member_id}", direct_headers),
                            (f"gateway ({transport})", f"{gateway}/v1/members/{member_id}", headers),
                        ):
                            figures = load(url, hdrs, concurrency=args.concurrency, seconds=args.seconds)
                            runs.setdefault(name, []).append(figures)
                    if ingest is None and community_id is not None:
                        ingest = load(
                            f"{gateway}/v1/events/batch",
                            headers,
                            concurrency=args.batch_concurrency,
                            seconds=args.batch_seconds,
                            method="POST",
                            mode="events-batch",
                            member_id=member_id,
                            community_id=community_id,
                            batch=1000,
                        )
    results = {name: median_run(figures) for name, figures in runs.items()}

    print(f"\nGET /v1/members/{{id}}, concurrency {args.concurrency}, 127.0.0.1, Postgres")
    print(f"median of {args.rounds} alternating runs of {args.seconds:g} s each")
    print(f"{'':<28} {'req/s':>9} {'p50 ms':>8} {'p99 ms':>8}   {'requests':>7}")
    direct = results["direct"]
    failed = False
    for name, figures in results.items():
        print(row(name, figures))
    for name, figures in results.items():
        if name == "direct":
            continue
        ratio = figures["rps"] / direct["rps"] if direct["rps"] else 0.0
        added = figures["p99_ms"] - direct["p99_ms"]
        verdict = "ok" if ratio >= 0.70 and added <= 3.0 else "BELOW TARGET"
        failed |= verdict != "ok"
        print(f"{name}: {ratio:.0%} of direct throughput, p99 +{added:.2f} ms  [{verdict}] (target >= 70 %, <= 3 ms)")
    if ingest is None:
        print("\nPOST /v1/events/batch: skipped (the members service has no public routes yet)")
    else:
        accepted = sum(n for status, n in ingest["statuses"].items() if str(status).startswith("2"))
        events_per_second = ingest["rps"] * 1000 * (accepted / max(1, ingest["requests"]))
        verdict = "ok" if events_per_second >= 30_000 else "BELOW TARGET"
        print(
            f"\nPOST /v1/events/batch via gateway, 1000 events/request, concurrency {args.batch_concurrency}: "
            f"{events_per_second:,.0f} events/s, p50 {ingest['p50_ms']:.0f} ms, p99 {ingest['p99_ms']:.0f} ms, "
            f"statuses {ingest['statuses']}  [{verdict}] (target >= 30,000)"
        )
        failed |= verdict != "ok"
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
