"""`qunyun up` as real processes: five services, probes, the internal-token wall, clean stops.

With no QUNYUN_DATABASE_URL (the "embedded" backend, what `make run` does), `up` also runs
a PostgreSQL server under the data dir: however `up` ends (SIGTERM, Ctrl-C, SIGKILL, a
service dying), no `postgres` process may outlive it.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest

from services.common.settings import DOMAIN_SERVICES, SERVICES
from tests.e2e.runner import (
    STOPPED_LINE,
    QunyunRun,
    free_port_base,
    is_alive,
    parent_of,
    postgres_processes,
    postmaster_pid,
    qunyun_env,
    start_qunyun,
    wait_until_gone,
)

pytestmark = pytest.mark.e2e


def embedded_server_pids(run: QunyunRun) -> list[int]:
    """The embedded server's processes while `up` runs: a postmaster, a child of `up`, and its backends."""
    postmaster = postmaster_pid(run.pgdata)
    assert postmaster is not None, f"no postmaster.pid in {run.pgdata}"
    assert is_alive(postmaster)
    assert parent_of(postmaster) == run.process.pid  # a direct child, not a daemon
    pids = postgres_processes(run.pgdata)
    assert postmaster in pids
    assert len(pids) > 1  # checkpointer, walwriter, ... and the services' connections
    return pids


def assert_everything_gone(run: QunyunRun, server: list[int]) -> None:
    assert wait_until_gone([*run.pids.values(), *server]) == []
    assert postgres_processes(run.pgdata) == []  # nothing started later either


@pytest.mark.parametrize("backend", ["embedded", "postgres"])
def test_up_serves_five_processes_and_sigterm_stops_them_all(tmp_path: Path, backend: str) -> None:
    with start_qunyun(tmp_path, backend=backend) as run:
        server = embedded_server_pids(run) if backend == "embedded" else []
        assert set(run.urls) == set(SERVICES)
        assert len(set(run.pids.values())) == len(SERVICES)
        for pid in run.pids.values():
            assert is_alive(pid)
            assert parent_of(pid) == run.process.pid

        for service in SERVICES:
            with run.client(service) as client:
                assert client.get("/healthz").json() == {"status": "ok"}
                assert client.get("/readyz").json() == {"status": "ready"}
                assert "qunyun_http_requests_total" in client.get("/metrics").text

        with run.client(headers=run.admin_headers()) as admin:
            me = admin.get("/v1/me").json()
            assert me["kind"] == "staff"
            assert "admin" in me["roles"]

        with run.client() as gateway:
            assert gateway.get("/v1/me").status_code == 401
            document = gateway.get("/openapi.json")
            assert document.status_code == 200
            assert document.json()["openapi"].startswith("3.1")
            docs = gateway.get("/docs")
            assert docs.status_code == 200
            assert docs.headers["content-type"].startswith("text/html")
            console = gateway.get("/console")
            assert console.status_code == 200
            assert "console/assets/console.js" in console.text
            assert gateway.get("/console/assets/console.js").status_code == 200
        assert f"  console   {run.base_url}/console" in run.text()

        for service in DOMAIN_SERVICES:
            with run.client(service) as client:
                for answer in (client.get("/openapi.json"), client.post("/v1/anything", json={})):
                    assert answer.status_code == 401
                    assert answer.headers["content-type"] == "application/problem+json"

        if backend == "embedded":
            assert "  database  embedded PostgreSQL 18 at " in run.text()
            # Another qunyun command beside `up` uses the running server and leaves it running.
            migrate = subprocess.run(
                [sys.executable, "-m", "services.cli", "migrate"],
                cwd=tmp_path,
                env=qunyun_env(run.data_dir, free_port_base()),
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert migrate.returncode == 0, migrate.stderr
            postmaster = postmaster_pid(run.pgdata)
            assert postmaster in server
            assert is_alive(postmaster or 0)
            with run.client("rewards") as rewards:
                assert rewards.get("/readyz").json() == {"status": "ready"}
        else:
            assert "  database  PostgreSQL at 127.0.0.1:5432 (QUNYUN_DATABASE_URL)" in run.text()
            assert not run.pgdata.exists()  # no embedded server when a URL is given

        assert run.stop(signal.SIGTERM) == 0
        assert_everything_gone(run, server)
        run.wait_for_line(STOPPED_LINE)


def test_a_dying_service_stops_the_others_and_up_fails(tmp_path: Path) -> None:
    with start_qunyun(tmp_path) as run:
        server = embedded_server_pids(run)
        os.kill(run.pids["members"], signal.SIGKILL)
        assert run.process.wait(timeout=30) == 1
        run.wait_for_line("members exited during run")
        assert_everything_gone(run, server)


def test_killing_the_supervisor_leaves_no_orphans(tmp_path: Path) -> None:
    with start_qunyun(tmp_path) as run:
        server = embedded_server_pids(run)
        run.process.kill()  # SIGKILL: no chance to clean up; the kernel signals the children
        run.process.wait(timeout=10)
        assert_everything_gone(run, server)


def test_ctrl_c_stops_cleanly_the_password_is_printed_once_and_data_survives_a_restart(tmp_path: Path) -> None:
    """One data dir, two runs (each start costs seconds of CPU, so one test covers all three)."""
    with start_qunyun(tmp_path, admin=None) as first:
        server = embedded_server_pids(first)
        assert first.admin_email == "admin@qunyun.local"
        assert first.admin_password is not None
        assert len(first.admin_password) >= 12
        assert "shown only this once" in first.text()
        with first.client(headers=first.admin_headers()) as admin:
            assert "admin" in admin.get("/v1/me").json()["roles"]
            community = admin.post("/v1/communities", json={"name": "Survivors"})
            assert community.status_code == 201, community.text
        # Ctrl-C: everything stops, the embedded server cleanly (not a crash).
        assert first.stop(signal.SIGINT) == 0
        assert_everything_gone(first, server)
        first.wait_for_line(STOPPED_LINE)
        assert not (first.pgdata / "postmaster.pid").exists()
    # The same data dir: the embedded server starts again on the same files.
    with start_qunyun(tmp_path, admin=None) as second:
        assert second.admin_email == "admin@qunyun.local"
        assert second.admin_password is None
        assert "existing account" in second.text()
        assert first.admin_password not in second.text()
        second.admin_password = first.admin_password
        with second.client(headers=second.admin_headers()) as admin:
            names = [item["name"] for item in admin.get("/v1/communities").json()["items"]]
            assert names == ["Survivors"]


def test_up_refuses_a_taken_port_before_touching_anything(tmp_path: Path) -> None:
    base = free_port_base()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as holder:
        holder.bind(("127.0.0.1", base + 2))
        holder.listen()
        result = subprocess.run(
            [sys.executable, "-m", "services.cli", "up"],
            cwd=tmp_path,
            env=qunyun_env(tmp_path / "var", base),
            capture_output=True,
            text=True,
            timeout=60,
        )
    assert result.returncode == 1
    assert f"content (127.0.0.1:{base + 2})" in result.stderr
    assert not (tmp_path / "var").exists()


def test_serve_runs_one_service_alone(tmp_path: Path) -> None:
    base = free_port_base()
    env = qunyun_env(tmp_path / "var", base)
    pgdata = tmp_path / "var" / "postgres"
    # migrate starts the embedded server for its own duration only.
    subprocess.run([sys.executable, "-m", "services.cli", "migrate", "rewards"], cwd=tmp_path, env=env, check=True)
    assert (pgdata / "PG_VERSION").exists()
    assert postgres_processes(pgdata) == []
    process = subprocess.Popen(
        [sys.executable, "-m", "services.cli", "serve", "rewards", "--port", str(base)],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        answer = None
        for _ in range(300):
            try:
                answer = httpx.get(f"http://127.0.0.1:{base}/readyz", timeout=1, trust_env=False)
                break
            except httpx.TransportError:
                if process.poll() is not None:
                    break
                time.sleep(0.1)
        assert answer is not None
        assert answer.json() == {"status": "ready"}
        # Run alone, serve owns the embedded server: a direct child, stopped when serve stops.
        server = postgres_processes(pgdata)
        assert postmaster_pid(pgdata) in server
        assert parent_of(postmaster_pid(pgdata) or 0) == process.pid
        process.send_signal(signal.SIGTERM)
        assert process.wait(timeout=20) in (0, -signal.SIGTERM)
        assert wait_until_gone(server) == []
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        for pid in postgres_processes(pgdata):
            os.kill(pid, signal.SIGKILL)
