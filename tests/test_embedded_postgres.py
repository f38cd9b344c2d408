"""EmbeddedPostgres on its own: URLs that work, a long data dir path, a start-up failure that
says why, and an owner killed with SIGKILL leaving no server behind.

One cluster for the module (initdb is the slow part), at a path too long for a Unix socket
so the fallback socket directory is exercised too.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest
import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine
from sqlalchemy.pool import NullPool

from services.common.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError, socket_dir_for
from tests.e2e.runner import postgres_processes, postmaster_pid, scratch_dir, wait_until_gone

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def pgdata() -> Iterator[Path]:
    """A fresh cluster directory (initialized, server stopped) whose socket path is too long."""
    with scratch_dir("qunyun-embedded-") as workdir:
        path = workdir / ("long-" * 20) / "postgres"
        server = EmbeddedPostgres(path)
        server.start()
        server.stop()
        yield path
        assert postgres_processes(path) == []
        # A killed owner cannot tidy up its socket dir in /tmp: the test does.
        shutil.rmtree(socket_dir_for(path), ignore_errors=True)


async def _select_one(url: str) -> object:
    engine = create_async_engine(url, poolclass=NullPool)
    try:
        async with engine.connect() as conn:
            return await conn.scalar(sa.text("SELECT current_database()"))
    finally:
        await engine.dispose()


def test_urls_reach_the_server_through_a_short_socket_dir(pgdata: Path) -> None:
    server = EmbeddedPostgres(pgdata)
    assert str(server.socket_dir).startswith("/tmp/qunyun-pg-")
    assert server.server_url == f"postgresql+asyncpg://postgres@/?host={server.socket_dir}"
    assert (
        server.database_url("qunyun_{service}")
        == f"postgresql+asyncpg://postgres@/qunyun_{{service}}?host={server.socket_dir}"
    )
    server.start()
    try:
        assert server.owned
        assert server.pid == postmaster_pid(pgdata)
        assert asyncio.run(_select_one(server.database_url("postgres"))) == "postgres"
        assert asyncio.run(_select_one(server.database_url("template1"))) == "template1"
    finally:
        server.stop()
    assert server.pid is None
    assert not server.socket_dir.exists()  # nothing left in /tmp


def test_a_server_that_cannot_start_says_why(pgdata: Path) -> None:
    config = pgdata / "postgresql.auto.conf"
    original = config.read_text()
    config.write_text(original + "shared_buffers = 'a lot'\n")
    try:
        server = EmbeddedPostgres(pgdata)
        with pytest.raises(EmbeddedPostgresError) as failed:
            server.start()
        message = str(failed.value)
        assert "exited during start-up" in message
        assert f"The end of its log ({pgdata / 'log'})" in message
        assert 'parameter "shared_buffers"' in message  # Postgres's own words, from the log
        assert server.pid is None
        assert not server.owned
    finally:
        config.write_text(original)
    again = EmbeddedPostgres(pgdata)  # the directory is still good
    again.start()
    assert again.owned
    again.stop()


@pytest.mark.parametrize("signum", [signal.SIGKILL, signal.SIGTERM])
def test_the_server_dies_with_its_owner(pgdata: Path, signum: signal.Signals) -> None:
    owner_code = textwrap.dedent(
        f"""
        import sys, time
        from pathlib import Path
        from services.common.embedded_postgres import EmbeddedPostgres
        server = EmbeddedPostgres(Path({str(pgdata)!r}))
        server.start()
        print(server.pid, flush=True)
        time.sleep(120)
        """
    )
    owner = subprocess.Popen([sys.executable, "-c", owner_code], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert owner.stdout is not None
        postmaster = int(owner.stdout.readline())
        server = postgres_processes(pgdata)
        assert postmaster in server
        owner.send_signal(signum)  # no cleanup code runs on SIGKILL (nor on SIGTERM, unhandled)
        owner.wait(timeout=10)
        assert wait_until_gone(server) == []
        assert postgres_processes(pgdata) == []
    finally:
        if owner.poll() is None:
            owner.kill()
            owner.wait()
        for pid in postgres_processes(pgdata):  # a failure here must not leave a server behind
            os.kill(pid, signal.SIGKILL)
