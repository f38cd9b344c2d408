"""`qunyun up`'s process supervisor: five uvicorn processes, one terminal, no orphans.

Each service runs as `python -m services.cli serve <service>` in its own process group,
so Ctrl-C reaches only the supervisor, which then stops the children in order: SIGTERM
to each group, a grace period, SIGKILL for whatever is left. If the supervisor itself
dies (even by SIGKILL), each child gets SIGTERM from the kernel (`PR_SET_PDEATHSIG`, set
by `serve` when it runs under a supervisor). If one child dies, the others are stopped
and the supervisor exits non-zero. Children's output is copied to the terminal, one
line at a time, prefixed with the service name. `on_stopped` runs last, once every child
has exited: `qunyun up` stops the embedded database server there, after the services
have drained their connections.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import os
import signal
import sys
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TextIO

import httpx

from services.common.settings import ServiceName

SUPERVISOR_PID_ENV = "QUNYUN_SUPERVISOR_PID"
_PR_SET_PDEATHSIG = 1
_LINE_LIMIT = 1 << 20
_COLORS = ("36", "32", "33", "35", "34")  # cyan, green, yellow, magenta, blue


def die_with_supervisor() -> None:
    """In a child of `qunyun up`: ask the kernel for SIGTERM when the supervisor dies.

    Called first thing in `serve`. If the supervisor is already gone (it died between
    fork and this call), exit at once rather than run as an orphan.
    """
    expected = os.environ.get(SUPERVISOR_PID_ENV)
    if not expected or not sys.platform.startswith("linux"):
        return
    libc = ctypes.CDLL(None, use_errno=True)
    libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM, 0, 0, 0)
    if os.getppid() != int(expected):
        os._exit(1)


@dataclass
class Child:
    service: ServiceName
    url: str
    process: asyncio.subprocess.Process
    exited: asyncio.Future[int]
    pump: asyncio.Task[None]

    @property
    def pid(self) -> int:
        return self.process.pid


@dataclass
class Supervisor:
    """Starts the services, waits until each answers /healthz, and keeps them running."""

    services: Sequence[tuple[ServiceName, str, int]]  # (service, host, port)
    out: TextIO = field(default_factory=lambda: sys.stdout)
    env: Mapping[str, str] = field(default_factory=lambda: dict(os.environ))
    ready_timeout: float = 60.0
    stop_timeout: float = 10.0
    on_stopped: Callable[[], None] | None = None  # blocking; run in a worker thread
    children: list[Child] = field(default_factory=list, init=False)
    _stop: asyncio.Event = field(default_factory=asyncio.Event, init=False)
    _signals: int = field(default=0, init=False)

    def say(self, text: str) -> None:
        self.out.write(text + "\n")
        self.out.flush()

    async def run(self, banner: Callable[[], Sequence[str]]) -> int:
        """Run until a signal (exit 0) or a child's death (exit 1); always stop every child."""
        loop = asyncio.get_running_loop()
        handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
        for signum in handled:
            loop.add_signal_handler(signum, self._on_signal, signum)
        try:
            for service, host, port in self.services:
                self.children.append(await self._spawn(service, host, port))
            outcome = await self._until_stopped(self._wait_ready(), phase="start-up")
            if outcome is not None:
                return outcome
            for line in banner():
                self.say(line)
            outcome = await self._until_stopped(asyncio.Event().wait(), phase="run")
            return outcome if outcome is not None else 0
        finally:
            await self.stop()
            if self.on_stopped is not None:
                await asyncio.to_thread(self.on_stopped)
            for signum in handled:
                loop.remove_signal_handler(signum)

    def _on_signal(self, signum: int) -> None:
        self._signals += 1
        if self._signals == 1:
            self.say(f"qunyun: {signal.Signals(signum).name} received, stopping all services")
            self._stop.set()
        else:  # a second Ctrl-C: the user does not want to wait
            self.say("qunyun: killing all services now")
            for child in self.children:
                if child.process.returncode is None:
                    _signal_group(child.pid, signal.SIGKILL)

    async def _spawn(self, service: ServiceName, host: str, port: int) -> Child:
        env = {**self.env, SUPERVISOR_PID_ENV: str(os.getpid()), "PYTHONUNBUFFERED": "1"}
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "serve",
            service,
            "--host",
            host,
            "--port",
            str(port),
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
            env=env,
            limit=_LINE_LIMIT,
            process_group=0,  # Ctrl-C in the terminal reaches the supervisor only
        )
        probe_host = "127.0.0.1" if host in ("0.0.0.0", "") else host
        index = len(self.children)
        return Child(
            service=service,
            url=f"http://{probe_host}:{port}",
            process=process,
            exited=asyncio.ensure_future(process.wait()),
            pump=asyncio.create_task(self._pump(service, process, index)),
        )

    async def _pump(self, service: str, process: asyncio.subprocess.Process, index: int) -> None:
        assert process.stdout is not None
        prefix = f"{service:<8} | "
        if self.out.isatty() and "NO_COLOR" not in self.env:
            prefix = f"\x1b[{_COLORS[index % len(_COLORS)]}m{prefix}\x1b[0m"
        while True:
            try:
                line = await process.stdout.readline()
            except ValueError:  # over the limit: asyncio has dropped it; say so rather than stall
                line = b"[a log line longer than 1 MiB was dropped]"
            if not line:
                return
            self.out.write(prefix + line.decode("utf-8", "replace").rstrip("\n") + "\n")
            self.out.flush()

    async def _wait_ready(self) -> None:
        async with httpx.AsyncClient(timeout=1.0, trust_env=False) as client:
            # asyncio.timeout, not wait_for: a Ctrl-C during start-up cancels the gather
            # cleanly instead of leaving a "never retrieved" CancelledError on the terminal.
            async with asyncio.timeout(self.ready_timeout):
                await asyncio.gather(*(self._wait_healthy(client, child) for child in self.children))

    async def _wait_healthy(self, client: httpx.AsyncClient, child: Child) -> None:
        while True:
            with contextlib.suppress(httpx.HTTPError):
                if (await client.get(f"{child.url}/healthz")).status_code == 200:
                    return
            await asyncio.sleep(0.1)

    async def _until_stopped(self, work: Awaitable[object], *, phase: str) -> int | None:
        """Await `work` unless a signal or a child's death comes first; None if `work` finished."""
        main = asyncio.ensure_future(work)
        stop = asyncio.ensure_future(self._stop.wait())
        watched = {child.exited: child for child in self.children}
        try:
            candidates: set[asyncio.Future[Any]] = {main, stop, *watched}
            done, _ = await asyncio.wait(candidates, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for task in (main, stop):
                task.cancel()
        if stop in done:
            return 0
        for future, child in watched.items():
            if future in done:
                self.say(f"qunyun: {child.service} exited during {phase} (code {future.result()}); stopping the others")
                return 1
        if isinstance(main.exception(), TimeoutError):
            waiting = [child.service for child in self.children]
            self.say(f"qunyun: not every service answered /healthz within {self.ready_timeout:g} s ({waiting})")
            return 1
        main.result()
        return None

    async def stop(self) -> None:
        """SIGTERM every child's process group, wait, SIGKILL what is left; then flush output."""
        running = [child for child in self.children if child.process.returncode is None]
        for child in running:
            _signal_group(child.pid, signal.SIGTERM)
        if running:
            _, late = await asyncio.wait([child.exited for child in running], timeout=self.stop_timeout)
            for child in running:
                if child.exited in late:
                    self.say(f"qunyun: {child.service} did not stop within {self.stop_timeout:g} s; killing it")
                    _signal_group(child.pid, signal.SIGKILL)
            if late:
                await asyncio.wait(late)
        if self.children:
            await asyncio.wait([child.pump for child in self.children], timeout=2)


def _signal_group(pgid: int, signum: signal.Signals) -> None:
    with contextlib.suppress(ProcessLookupError, PermissionError):
        os.killpg(pgid, signum)
