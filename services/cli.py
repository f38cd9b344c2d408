"""`qunyun`: run, migrate and administer the services.

- `qunyun up`: migrate every database, make sure the bootstrap admin exists, then run the
  five services as separate processes in the foreground (Ctrl-C stops them all).
- `qunyun serve SERVICE`: one service under uvicorn (what `up`, containers and Procfiles run).
- `qunyun migrate [SERVICE]`, `qunyun create-admin`, `qunyun makemigrations SERVICE -m ...`.

With no `QUNYUN_DATABASE_URL`, the databases live on the embedded PostgreSQL under the
data dir. `up` starts it first and stops it last; the other commands use the one a running
`up` started, or start their own for their duration.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import os
import re
import socket
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Annotated

import typer
from sqlalchemy.engine import make_url

from services.common.embedded_postgres import EmbeddedPostgres, EmbeddedPostgresError, server_major_version
from services.common.migrations import ensure_database, make_revision_sync, upgrade_sync
from services.common.settings import SERVICES, ServiceName, Settings, get_settings

app = typer.Typer(help="Qunyun: an open backend for running online communities.", no_args_is_help=True)

DEFAULT_ADMIN_EMAIL = "admin@qunyun.local"
MIN_PASSWORD_LENGTH = 12
GRACEFUL_SHUTDOWN_SECONDS = 8  # below `up`'s stop timeout, so a clean stop never needs SIGKILL
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _services(service: str | None) -> list[ServiceName]:
    if service is None:
        return list(SERVICES)
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return [service]  # type: ignore[list-item]


def _fail(message: str, code: int = 1) -> typer.Exit:
    typer.echo(f"qunyun: {message}", err=True)
    return typer.Exit(code)


def _embedded_server(settings: Settings, services: Sequence[ServiceName]) -> EmbeddedPostgres | None:
    """The embedded server these services' databases live on, running (ours or another
    qunyun's); None when every one of them has a database URL."""
    if not settings.uses_embedded_postgres_for(services):
        return None
    if settings.env == "production":
        # A private server in a container's scratch space would lose the data with the container.
        missing = [name for name in services if not settings.has_database_url(name)]
        raise _fail(
            f"QUNYUN_ENV=production needs a database URL for {', '.join(missing)}: set QUNYUN_DATABASE_URL "
            "(or QUNYUN_<SERVICE>_DATABASE_URL); the embedded PostgreSQL is for development"
        )
    server = settings.embedded_postgres()
    try:
        server.start()
    except EmbeddedPostgresError as exc:
        raise _fail(str(exc)) from exc
    return server


@contextlib.contextmanager
def _database_server(settings: Settings, services: Sequence[ServiceName]) -> Iterator[EmbeddedPostgres | None]:
    """The embedded server for the length of a command; stopped after only if the command started it."""
    server = _embedded_server(settings, services)
    try:
        yield server
    finally:
        if server is not None:
            server.stop()


def _database_line(settings: Settings, server: EmbeddedPostgres | None) -> str:
    if server is None:
        url = make_url(settings.database_url_for("gateway"))
        where = f"{url.host}:{url.port or 5432}" if url.host else str(url.query.get("host", "its default socket"))
        return f"  database  PostgreSQL at {where} (QUNYUN_DATABASE_URL)"
    line = f"  database  embedded PostgreSQL {server_major_version()} at {(settings.data_dir / 'postgres').as_posix()}"
    if not server.owned:
        line += f" (started by another qunyun process, pid {server.pid}: it stays up after this one)"
    return line


def _migrate(settings: Settings, services: list[ServiceName]) -> None:
    for name in services:
        url = settings.database_url_for(name)
        if asyncio.run(ensure_database(url)):
            typer.echo(f"{name}: created database")
        upgrade_sync(name, url)
        typer.echo(f"{name}: migrated")


def _check_password(password: str) -> str | None:
    """Why a password is refused, or None."""
    if len(password) < MIN_PASSWORD_LENGTH:
        return f"the password must be at least {MIN_PASSWORD_LENGTH} characters"
    return None


@dataclass(frozen=True)
class AdminLogin:
    email: str
    created: bool
    generated_password: str | None  # shown once, only when we made it up


async def _ensure_admin(settings: Settings, email: str, password: str | None) -> AdminLogin:
    """Create the admin in the gateway's database unless an account with that email exists."""
    # Imported here: the CLI must not pull the gateway's code into every command.
    from services.common.db import Database
    from services.common.events import Outbox
    from services.gateway.auth.admin import ensure_admin
    from services.gateway.db import kit_tables

    outbox = Outbox(kit_tables, "gateway", settings)
    db = Database(settings.database_url_for("gateway"), settings, info={"outbox": outbox})
    try:
        async with db.session() as session:
            created, shown = await ensure_admin(session, email, password)
            await db.commit(session)
    finally:
        await db.dispose()
    return AdminLogin(email=email, created=created, generated_password=shown if password is None else None)


def _bootstrap_admin(settings: Settings) -> AdminLogin:
    """The admin from QUNYUN_ADMIN_EMAIL / QUNYUN_ADMIN_PASSWORD, or admin@qunyun.local with a fresh password."""
    email = (settings.admin_email or DEFAULT_ADMIN_EMAIL).strip()
    password = settings.admin_password.get_secret_value() if settings.admin_password else None
    if password is not None and (problem := _check_password(password)):
        raise _fail(f"QUNYUN_ADMIN_PASSWORD is refused: {problem}")
    return asyncio.run(_ensure_admin(settings, email, password))


def _admin_lines(login: AdminLogin) -> list[str]:
    if login.generated_password:
        return [
            f"  admin     {login.email}",
            f"  password  {login.generated_password}",
            "            (generated; shown only this once: store it now, or set QUNYUN_ADMIN_PASSWORD)",
        ]
    if login.created:
        return [f"  admin     {login.email}  (created; password from QUNYUN_ADMIN_PASSWORD)"]
    return [f"  admin     {login.email}  (existing account; password unchanged)"]


def _ports_in_use(settings: Settings) -> list[str]:
    """Services whose port is taken already (uvicorn would fail later, less clearly)."""
    taken = []
    for name in SERVICES:
        port = settings.port_for(name)
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((settings.host, port))
            except OSError as exc:
                if exc.errno != errno.EADDRINUSE:
                    raise
                taken.append(f"{name} ({settings.host}:{port})")
    return taken


@app.command()
def up(
    ready_timeout: Annotated[float, typer.Option(help="Seconds to wait for every /healthz")] = 60.0,
    stop_timeout: Annotated[float, typer.Option(help="Seconds between SIGTERM and SIGKILL on stop")] = 10.0,
) -> None:
    """Migrate, ensure the bootstrap admin, and run all five services in the foreground."""
    from services.supervisor import Supervisor

    settings = get_settings()
    if taken := _ports_in_use(settings):
        raise _fail(f"port already in use: {', '.join(taken)}; stop what holds it or set QUNYUN_PORT_BASE")
    # The database first, before anything needs it; the supervisor stops it last (on_stopped),
    # and the `finally` covers a failure before the supervisor runs.
    server = _embedded_server(settings, SERVICES)
    try:
        _migrate(settings, list(SERVICES))
        login = _bootstrap_admin(settings)

        env = dict(os.environ)
        if "QUNYUN_LOG_JSON" not in env and sys.stdout.isatty():
            env["QUNYUN_LOG_JSON"] = "false"  # readable logs on a terminal; JSON when captured
        supervisor = Supervisor(
            services=[(name, settings.host, settings.port_for(name)) for name in SERVICES],
            env=env,
            ready_timeout=ready_timeout,
            stop_timeout=stop_timeout,
            on_stopped=server.stop if server is not None else None,
        )

        banner_shown = False

        def banner() -> list[str]:
            nonlocal banner_shown
            banner_shown = True
            gateway, *others = supervisor.children
            lines = [
                "",
                "Qunyun is running (Ctrl-C stops every service)",
                f"  gateway   {gateway.url}  pid {gateway.pid}",
                f"  docs      {gateway.url}/docs",
                f"  console   {gateway.url}/console",
            ]
            lines += [f"  {child.service:<9} {child.url}  pid {child.pid}" for child in others]
            return [*lines, _database_line(settings, server), *_admin_lines(login), ""]

        try:
            code = asyncio.run(supervisor.run(banner))
        finally:
            if login.generated_password and not banner_shown:
                # The admin exists now, and its password is shown nowhere else: a failed start
                # (or a Ctrl-C before the banner) must not lose it (the next `qunyun up` finds
                # the account and makes none).
                lines = ["qunyun: the services did not start, but the admin was created:", *_admin_lines(login)]
                typer.echo("\n".join(lines))
    finally:
        if server is not None:
            server.stop()
    typer.echo("qunyun: all services stopped")
    raise typer.Exit(code)


@app.command()
def serve(
    service: Annotated[str, typer.Argument(help=f"One of {', '.join(SERVICES)}")],
    port: Annotated[int | None, typer.Option(help="Default: QUNYUN_PORT_BASE + the service's offset")] = None,
    host: Annotated[str | None, typer.Option(help="Default: QUNYUN_HOST")] = None,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes")] = 1,
) -> None:
    """Run one service with uvicorn (uvloop, httptools)."""
    import uvicorn

    from services.supervisor import SUPERVISOR_PID_ENV, die_with_supervisor

    (name,) = _services(service)
    die_with_supervisor()
    settings = get_settings()
    # Under `qunyun up` the embedded server is up before any service starts, and its URL is
    # known from the settings alone; run alone, this process attaches to it or owns one.
    under_up = bool(os.environ.get(SUPERVISOR_PID_ENV))
    with contextlib.nullcontext() if under_up else _database_server(settings, [name]):
        uvicorn.run(
            f"services.{name}.app:create_app",
            factory=True,
            host=host or settings.host,
            port=port if port is not None else settings.port_for(name),
            workers=workers,
            loop="uvloop",
            http="httptools",
            access_log=False,  # RequestContextMiddleware logs each request, without secrets
            proxy_headers=True,
            forwarded_allow_ips="127.0.0.1",
            timeout_graceful_shutdown=GRACEFUL_SHUTDOWN_SECONDS,
            log_level=settings.log_level.lower(),
        )


@app.command()
def migrate(service: Annotated[str | None, typer.Argument(help="One service; all if omitted")] = None) -> None:
    """Create missing databases and upgrade them to the latest migration."""
    settings, services = get_settings(), _services(service)
    with _database_server(settings, services):
        _migrate(settings, services)


@app.command("create-admin")
def create_admin(
    email: Annotated[str, typer.Option(prompt=True, help="The admin's login")],
    password: Annotated[
        str | None,
        typer.Option(help=f"At least {MIN_PASSWORD_LENGTH} characters; prompted for (hidden) if omitted"),
    ] = None,
) -> None:
    """Create an admin account (staff with the admin role) in the gateway's database."""
    email = email.strip()
    if not _EMAIL.match(email):
        raise _fail(f"not an email address: {email!r}", code=2)
    if password is None:
        while True:
            password = typer.prompt("Password", hide_input=True, confirmation_prompt=True)
            problem = _check_password(password)
            if problem is None:
                break
            typer.echo(f"Refused: {problem}.", err=True)
    elif problem := _check_password(password):
        raise _fail(f"refused: {problem}", code=2)
    settings = get_settings()
    with _database_server(settings, ["gateway"]):
        _migrate(settings, ["gateway"])
        login = asyncio.run(_ensure_admin(settings, email, password))
    if not login.created:
        raise _fail(f"an account with the email {email} exists already; nothing changed")
    typer.echo(f"created admin {email}")


@app.command()
def makemigrations(
    service: Annotated[str, typer.Argument(help="The service whose models changed")],
    message: Annotated[str, typer.Option("-m", "--message")],
) -> None:
    """Autogenerate a migration for a service (against its configured database)."""
    settings = get_settings()
    (name,) = _services(service)
    url = settings.database_url_for(name)
    with _database_server(settings, [name]):
        asyncio.run(ensure_database(url))
        upgrade_sync(name, url)
        make_revision_sync(name, url, message)


def main() -> None:
    app()


if __name__ == "__main__":
    main()
