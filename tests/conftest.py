"""Fixtures shared by the whole suite, and the run's Postgres.

The suite runs on Postgres only, in parallel (pytest-xdist). The controller process picks
the server once: `QUNYUN_TEST_PG`, else the machine's 127.0.0.1:5432, else an embedded
server started for the run (`QUNYUN_TEST_PG=embedded` asks for one whatever else answers).
It migrates one template database per service and drops every database of the run at the
end. Each worker clones its own databases from the templates and runs one in-process
system on them; between tests only the tables a test wrote to are emptied. If the server
named by `QUNYUN_TEST_PG` does not answer, the run fails loudly.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from xdist.scheduler import LoadScopeScheduling

from tests.pg import (
    EMBEDDED,
    LOCAL_SERVER,
    SERVER_ENV,
    answers,
    drop_run_databases,
    migrate_templates,
    pg_server,
    run_id,
)
from tests.system import System, running_system

_embedded: Any = None  # the embedded server this run started, if any
_embedded_dir: Path | None = None


def _is_xdist_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


def _start_embedded_server() -> str:
    global _embedded, _embedded_dir
    from services.common.embedded_postgres import EmbeddedPostgres

    _embedded_dir = Path(tempfile.mkdtemp(prefix="qunyun-test-pg-"))
    _embedded = EmbeddedPostgres(_embedded_dir / "postgres")
    _embedded.start()
    return str(_embedded.server_url)


def pytest_configure(config: pytest.Config) -> None:
    if _is_xdist_worker(config):
        return  # the controller chose the server and migrated the templates
    run_id()  # fixed now, so every worker inherits it
    started = time.perf_counter()
    if os.environ.get(SERVER_ENV) == EMBEDDED:
        os.environ[SERVER_ENV] = _start_embedded_server()
        where = f"an embedded server in {_embedded_dir} (asked for)"
    elif SERVER_ENV in os.environ:
        if not asyncio.run(answers(pg_server(), timeout=10)):
            raise pytest.UsageError(f"{SERVER_ENV} names a Postgres server that does not answer: {pg_server()}")
        where = f"{SERVER_ENV}"
    elif asyncio.run(answers(LOCAL_SERVER)):
        os.environ[SERVER_ENV] = LOCAL_SERVER
        where = "the local server"
    else:
        os.environ[SERVER_ENV] = _start_embedded_server()
        where = f"an embedded server in {_embedded_dir}"
    asyncio.run(migrate_templates())
    config.stash[_SETUP_REPORT] = f"postgres: {where}, templates migrated in {time.perf_counter() - started:.1f} s"


_SETUP_REPORT = pytest.StashKey[str]()


# Modules whose tests share one running system (a module-scoped fixture that starts `qunyun
# up`): their tests go to one worker, so the system starts once. Every other test is scheduled
# on its own, as with `--dist load`.
SHARED_SYSTEM_MODULES = frozenset({"tests/e2e/test_flows_e2e.py", "tests/e2e/test_schemathesis.py"})


class SharedSystemScheduling(LoadScopeScheduling):  # type: ignore[misc]
    """xdist's scheduling by scope, where a scope is a whole module only for the modules above.

    (`--dist loadgroup` with `xdist_group` marks would say the same, but pytest-xdist 3.8 marks
    the group on a node id attribute that pytest 9 no longer reads, so it groups nothing.)
    """

    def _split_scope(self, nodeid: str) -> str:
        module = nodeid.split("::", 1)[0]
        return module if module in SHARED_SYSTEM_MODULES else nodeid


def pytest_xdist_make_scheduler(config: pytest.Config, log: Any) -> SharedSystemScheduling:
    return SharedSystemScheduling(config, log)


def pytest_report_header(config: pytest.Config) -> str | None:
    return config.stash.get(_SETUP_REPORT, None)


def pytest_unconfigure(config: pytest.Config) -> None:
    if _is_xdist_worker(config) or _SETUP_REPORT not in config.stash:
        return
    try:
        asyncio.run(drop_run_databases())
    finally:
        if _embedded is not None:
            _embedded.stop()
        if _embedded_dir is not None:
            shutil.rmtree(_embedded_dir, ignore_errors=True)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def running() -> AsyncIterator[System]:
    """This worker's in-process system, started on first use."""
    async with running_system() as system:
        yield system


@pytest_asyncio.fixture
async def system(running: System) -> AsyncIterator[System]:
    """The whole system in-process, with empty tables. Afterwards, every event the test
    wrote to any outbox must honour its contract, or the test fails."""
    await running.reset()
    yield running
    if violations := await running.contract_violations():
        pytest.fail("events broke their contracts:\n" + "\n".join(violations), pytrace=False)
