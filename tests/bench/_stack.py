"""The system the gateway and ingest benches drive: members and the gateway as real uvicorn
processes over fresh Postgres databases, with real credentials, and beside them the anchor
app (`_apps.anchor`: bare FastAPI + asyncpg) on the same members database, the yardstick
the targets are stated against. The services log at INFO, as in production.

The admin comes from the `QUNYUN_ADMIN_*` bootstrap and logs in with `POST /v1/auth/token`
(a staff JWT); partners use an API key made with `POST /v1/api-keys`. Direct calls to
members carry an internal token signed like the gateway's, for the same identity.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import httpx

from services.common.identity import INTERNAL_TOKEN_HEADER, Identity, sign_internal_token
from services.common.settings import Settings
from tests.bench._harness import CpuMeter, PostgresCpu, Server, free_port, temporary_databases, uvicorn

# The direct runs reuse one internal token for the whole bench.
TOKEN_TTL_SECONDS = 3600
SERVICES = ("gateway", "members")


@dataclass
class Stack:
    gateway: Server
    members: Server
    anchor: Server
    settings: Settings
    admin_headers: dict[str, str]
    admin: Identity

    def meter(self) -> CpuMeter:
        """CPU of the gateway, members, the anchor app and their Postgres backends across a run."""
        urls = [self.settings.database_url_for(s) for s in SERVICES]  # type: ignore[arg-type]
        servers = {"gateway": self.gateway.pid, "members": self.members.pid, "anchor": self.anchor.pid}
        return CpuMeter(servers, PostgresCpu(urls))

    def internal_headers(self, identity: Identity) -> dict[str, str]:
        return {INTERNAL_TOKEN_HEADER: sign_internal_token(identity, self.settings)}

    def api_key(self, *scopes: str) -> tuple[dict[str, str], Identity]:
        """A partner API key with these scopes: its headers, and the identity it stands for."""
        response = httpx.post(
            f"{self.gateway.url}/v1/api-keys",
            json={"name": f"bench {secrets.token_hex(3)}", "scopes": list(scopes)},
            headers=self.admin_headers,
            timeout=10,
        )
        response.raise_for_status()
        created = response.json()
        return {"X-API-Key": created["key"]}, Identity(kind="partner", id=created["id"], scopes=tuple(scopes))

    def create_community(self) -> str:
        response = httpx.post(
            f"{self.gateway.url}/v1/communities", json={"name": "Bench"}, headers=self.admin_headers, timeout=10
        )
        response.raise_for_status()
        return str(response.json()["id"])

    def create_members(self, count: int, concurrency: int = 8) -> list[str]:
        """`count` members made through the public API, `concurrency` at a time."""

        async def create() -> list[str]:
            limits = httpx.Limits(max_connections=concurrency)
            async with httpx.AsyncClient(
                base_url=self.gateway.url, headers=self.admin_headers, timeout=30, limits=limits
            ) as client:
                gate = asyncio.Semaphore(concurrency)
                tag = secrets.token_hex(3)

                async def one(i: int) -> str:
                    async with gate:
                        body = {"external_id": f"bench-{tag}-{i}", "display_name": f"Bench Member {i}"}
                        response = await client.post("/v1/members", json=body)
                    response.raise_for_status()
                    return str(response.json()["id"])

                return list(await asyncio.gather(*(one(i) for i in range(count))))

        return asyncio.run(create())


def write_ids(path: Path, ids: Sequence[str]) -> str:
    path.write_text("\n".join(ids))
    return str(path)


def login(gateway: str, email: str, password: str) -> tuple[dict[str, str], Identity]:
    response = httpx.post(f"{gateway}/v1/auth/token", data={"username": email, "password": password}, timeout=10)
    response.raise_for_status()
    headers = {"Authorization": f"Bearer {response.json()['access_token']}"}
    me = httpx.get(f"{gateway}/v1/me", headers=headers, timeout=10)
    me.raise_for_status()
    body = me.json()
    return headers, Identity(kind=body["kind"], id=body["id"], roles=tuple(body.get("roles") or ()))


@contextlib.contextmanager
def running_stack(*, transport: str = "aiohttp", pool: int = 200, db_pool: int = 10) -> Iterator[Stack]:
    """Members and the gateway on fresh databases, the admin logged in; all removed afterwards."""
    email, password = "bench-admin@qunyun.local", secrets.token_urlsafe(18)
    members_port, gateway_port, anchor_port = free_port(), free_port(), free_port()
    with temporary_databases(SERVICES) as database_url:
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
            "QUNYUN_LOG_LEVEL": "INFO",
            "QUNYUN_ADMIN_EMAIL": email,
            "QUNYUN_ADMIN_PASSWORD": password,
            "QUNYUN_INTERNAL_TOKEN_TTL_SECONDS": str(TOKEN_TTL_SECONDS),
            # Nothing consumes events here: the outbox fills, the relay stays idle.
            "QUNYUN_RELAY_ENABLED": "false",
            "QUNYUN_DB_POOL_SIZE": str(db_pool),
            # Members reads GET /v1/members/{id} on its read pool; the anchor reads on a pool of
            # QUNYUN_DB_POOL_SIZE. Both get as many connections (production's default is 4).
            "QUNYUN_DB_READ_POOL_SIZE": str(db_pool),
            "QUNYUN_BENCH_POOL": str(pool),
            "QUNYUN_BENCH_TRANSPORT": transport,
            "PYTHONPATH": os.getcwd(),
        }
        settings = Settings(database_url=database_url, internal_token_ttl_seconds=TOKEN_TTL_SECONDS)
        with (
            uvicorn("services.members.app:create_app", members_port, env) as members,
            uvicorn("tests.bench._apps:gateway", gateway_port, env) as gateway,
            uvicorn("tests.bench._apps:anchor", anchor_port, env) as anchor,
        ):
            headers, admin = login(gateway.url, email, password)
            yield Stack(gateway, members, anchor, settings, headers, admin)
