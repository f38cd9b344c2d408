"""The Postgres server the tests run on, and URLs of databases on it.

`QUNYUN_TEST_PG` names the server (a SQLAlchemy URL without a database, TCP or a Unix
socket: `postgresql+asyncpg://postgres@/?host=/path/to/socket-dir`). The suite's
`pytest_configure` sets it when it is unset: the machine's server on 127.0.0.1:5432 if it
answers, else an embedded server started for the run. Build database URLs with `pg_url`,
never by string concatenation: a socket URL keeps its `?host=` after the database name.
"""

from __future__ import annotations

import os

from sqlalchemy.engine import make_url

SERVER_ENV = "QUNYUN_TEST_PG"
LOCAL_SERVER = "postgresql+asyncpg://postgres@127.0.0.1:5432"
_NAME_SLOT = "qunyun-database-name-slot"


def pg_server() -> str:
    return os.environ.get(SERVER_ENV, LOCAL_SERVER)


def pg_url(database: str) -> str:
    """The URL of one database on the test server (`database` may hold a `{service}` slot)."""
    # SQLAlchemy would percent-encode the braces of a `{service}` slot: put the name in after.
    url = make_url(pg_server()).set(database=_NAME_SLOT).render_as_string(hide_password=False)
    return url.replace(_NAME_SLOT, database)
