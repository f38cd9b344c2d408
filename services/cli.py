"""`qunyun`: run, migrate and administer the services."""

from __future__ import annotations

import asyncio
from typing import Annotated

import typer

from services.common.migrations import ensure_database, make_revision_sync, upgrade_sync
from services.common.settings import SERVICES, ServiceName, get_settings

app = typer.Typer(help="Qunyun: an open backend for running online communities.", no_args_is_help=True)


def _services(service: str | None) -> list[ServiceName]:
    if service is None:
        return list(SERVICES)
    if service not in SERVICES:
        raise typer.BadParameter(f"unknown service {service!r}; one of {', '.join(SERVICES)}")
    return [service]  # type: ignore[list-item]


@app.command()
def migrate(service: Annotated[str | None, typer.Argument(help="One service; all if omitted")] = None) -> None:
    """Create missing databases and upgrade them to the latest migration."""
    settings = get_settings()
    for name in _services(service):
        url = settings.database_url_for(name)
        if asyncio.run(ensure_database(url)):
            typer.echo(f"created database for {name}")
        upgrade_sync(name, url)
        typer.echo(f"{name}: migrated")


@app.command()
def makemigrations(
    service: Annotated[str, typer.Argument(help="The service whose models changed")],
    message: Annotated[str, typer.Option("-m", "--message")],
) -> None:
    """Autogenerate a migration for a service (against its configured database)."""
    settings = get_settings()
    (name,) = _services(service)
    url = settings.database_url_for(name)
    asyncio.run(ensure_database(url))
    upgrade_sync(name, url)
    make_revision_sync(name, url, message)


def main() -> None:
    app()
