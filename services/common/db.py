"""Database plumbing shared by the services: metadata, engines, the one commit point.

Each service owns a `MetaData` (with a naming convention so constraints have stable
names in migrations) and a `Database` (engine + sessionmaker) created in its lifespan.
A request's session commits once, in `get_session`, after the route returns and before
the answer is sent: service functions only `add`/`flush`, so a state change and its
outbox row always land in one transaction.

A GET or HEAD opens its transaction only when it first writes (see `READ_FIRST`): plain
reads before that run on their own, so a read-only request costs no BEGIN and no COMMIT
round trip, and a request that does write still writes in one transaction.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Annotated, Any

import asyncpg
import sqlalchemy as sa
import structlog
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.dialects.postgresql import asyncpg as postgresql_asyncpg
from sqlalchemy.engine import Connection, ExecutionContext, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeout
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import ConnectionPoolEntry, NullPool
from sqlalchemy.sql.compiler import SQLCompiler

from services.common.settings import Settings

log = structlog.get_logger("qunyun.db")

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> sa.MetaData:
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


def utcnow() -> datetime:
    return datetime.now(UTC)


def rfc3339(moment: datetime) -> str:
    """`2026-11-21T08:00:00Z`: how the API and events write a time (UTC, `Z`)."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def new_id() -> uuid.UUID:
    return uuid.uuid4()


# The version (4) and variant (RFC 4122) bits of a random UUID, as `uuid.uuid4` sets them.
_V4_CLEAR = ~((0xF000 << 64) | (0xC000 << 48))
_V4_SET = (0x4000 << 64) | (0x8000 << 48)


def new_ids(count: int) -> list[uuid.UUID]:
    """`count` random (version 4) ids, as `new_id` makes them, from one read of the OS's
    randomness rather than one each (batch ingest makes a thousand at a time)."""
    raw = os.urandom(16 * count)
    from_bytes = int.from_bytes
    return [uuid.UUID(int=(from_bytes(raw[i : i + 16]) & _V4_CLEAR) | _V4_SET) for i in range(0, 16 * count, 16)]


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A `timestamptz` that refuses naive datetimes and reads back in UTC."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        return datetime  # TypeDecorator would say `object` (cursors coerce by this)

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def table_of(model: Any) -> sa.Table:
    """The Core table behind a SQLModel table class (hot paths use Core statements)."""
    table = model.__table__
    assert isinstance(table, sa.Table)
    return table


def create_engine(url: str, settings: Settings | None = None, *, pool: bool = True) -> AsyncEngine:
    """An asyncpg engine, pooled (or without a pool, for one-off jobs)."""
    driver = make_url(url).drivername
    if driver != "postgresql+asyncpg":
        raise ValueError(f"Qunyun runs on PostgreSQL through asyncpg (postgresql+asyncpg://...), not {driver!r}")
    # hide_parameters: SQL errors would otherwise carry bound values (emails, names) into logs.
    if not pool:
        return create_async_engine(url, poolclass=NullPool, hide_parameters=True)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size if settings else 20,
        max_overflow=settings.db_max_overflow if settings else 0,
        pool_timeout=settings.db_pool_timeout_seconds if settings else 30,
        # No ping on every checkout (a round trip per request): connections are recycled
        # after 30 min, and one broken by a database restart is invalidated on first use.
        pool_recycle=1800,
        hide_parameters=True,
    )


# An execution option: this connection's statements run without a transaction until the
# first one that is not a plain read (set on the engine behind `Database.read_session`).
READ_FIRST = "qunyun_read_first"
_BEGUN = "qunyun_read_first_begun"
# A statement may run outside a transaction only if it is a SELECT that takes no row lock,
# no advisory lock, sets nothing and writes nothing; anything else (or in doubt) begins one.
# A SELECT that calls a function with a side effect (a notification, a transaction id, a
# write in a function) must be named here, or it would commit on its own.
_NEEDS_TRANSACTION = re.compile(
    r"\bFOR\s+(?:NO\s+KEY\s+)?UPDATE\b|\bFOR\s+(?:KEY\s+)?SHARE\b|\bINTO\b|pg_advisory|set_config|nextval|setval"
    r"|pg_notify|txid_current|pg_current_xact_id|\blo_|content_ask_permit",
    re.IGNORECASE,
)


_plain_reads: dict[str, bool] = {}  # statements repeat (SQLAlchemy caches their text): decide once


# A WITH statement may hold data-modifying CTEs: plain only if no such keyword appears at all.
_WRITES = re.compile(r"\b(?:INSERT|UPDATE|DELETE|MERGE)\b", re.IGNORECASE)


def is_plain_read(statement: str) -> bool:
    """A statement that reads the same inside or outside a READ COMMITTED transaction."""
    plain = _plain_reads.get(statement)
    if plain is None:
        start = statement.lstrip()[:6].upper()
        plain = (start == "SELECT" or (start[:4] == "WITH" and _WRITES.search(statement) is None)) and (
            _NEEDS_TRANSACTION.search(statement) is None
        )
        if len(_plain_reads) >= 10_000:
            _plain_reads.clear()
        _plain_reads[statement] = plain
    return plain


def _transaction_on_first_write(
    conn: Connection, _cursor: Any, statement: str, _params: Any, context: ExecutionContext | None, many: bool
) -> None:
    """`before_cursor_execute`: on a read-first connection, plain reads run in autocommit
    (Postgres gives each its own snapshot, as READ COMMITTED does inside a transaction) until
    the first other statement, which begins the transaction everything after it joins."""
    info = conn.info
    if info.get(_BEGUN) or context is None or not context.execution_options.get(READ_FIRST):
        return
    adapter = conn.connection.dbapi_connection  # SQLAlchemy's asyncpg adapter: BEGINs lazily
    if not many and is_plain_read(statement):
        adapter.autocommit = True  # type: ignore[union-attr]
    else:
        adapter.autocommit = False  # type: ignore[union-attr]  # the next statement BEGINs
        info[_BEGUN] = True


def _end_read_first(dbapi_connection: Any, record: ConnectionPoolEntry) -> None:
    """Pool `checkin`: a connection goes back transactional, whoever takes it next."""
    record.info.pop(_BEGUN, None)
    if dbapi_connection is not None:
        dbapi_connection.autocommit = False


_ASYNCPG_DIALECT = postgresql_asyncpg.dialect()  # type: ignore[no-untyped-call]


def _compiled(statement: sa.ClauseElement) -> SQLCompiler:
    """`statement` compiled for asyncpg, refusing what would only be rendered per execution."""
    compiled = statement.compile(dialect=_ASYNCPG_DIALECT)
    assert isinstance(compiled, SQLCompiler)
    if compiled.literal_execute_params or compiled.post_compile_params:
        raise ValueError("a prepared statement needs every parameter bound at execution ($n), not rendered")
    return compiled


def driver_sql(statement: sa.ClauseElement) -> str:
    """A Core statement compiled once to the SQL asyncpg runs (`$n` parameters, in the order the
    statement names them), for `exec_driver_sql` on hot write paths."""
    return str(_compiled(statement))


class _Prepared:
    """A Core statement compiled once to the SQL asyncpg runs on a bare asyncpg connection
    (`Database.raw`, `Database.atomic`): no SQLAlchemy session, connection,
    greenlet, compiled-cache lookup or ORM row processing, which together cost about five
    times the query itself on a primary-key read. Rows come back as asyncpg Records (JSON
    decoded, timestamps aware)."""

    def __init__(self, statement: sa.ClauseElement) -> None:
        compiled = _compiled(statement)
        self.sql = str(compiled)
        self.params: tuple[str, ...] = tuple(compiled.positiontup or ())
        # Values written into the statement (`points > 0`) travel as parameters too.
        self.fixed = {name: value for name, value in compiled.params.items() if value is not None}

    def _args(self, values: dict[str, Any]) -> list[Any]:
        """Parameters in `$n` order: the caller's (passed to asyncpg as they are, no
        SQLAlchemy type processing), else the statement's own."""
        return [values[name] if name in values else self.fixed[name] for name in self.params]

    async def fetch_one(self, db: Database, **values: Any) -> asyncpg.Record | None:
        async with db.raw() as connection:
            return await connection.fetchrow(self.sql, *self._args(values))  # type: ignore[no-any-return]

    async def fetch_all(self, db: Database, **values: Any) -> list[asyncpg.Record]:
        async with db.raw() as connection:
            return await connection.fetch(self.sql, *self._args(values))  # type: ignore[no-any-return]


class PreparedRead(_Prepared):
    """A plain SELECT for the hottest reads, outside any request session or transaction.
    Only for reads of committed data (a GET): it does not see the uncommitted writes of the
    request's session."""

    def __init__(self, statement: sa.Select[Any]) -> None:
        super().__init__(statement)
        if not is_plain_read(self.sql):
            raise ValueError("PreparedRead runs plain SELECTs only")


class PreparedAtomic(_Prepared):
    """One statement that is a whole transaction on its own (autocommit: it commits when it
    ends, or rolls back entirely), for a hot write whose every step the database does in that
    one statement, e.g. a function that locks, counts and inserts. It runs on its own small pool
    (`Database.atomic`), not the read pool: a statement waiting on a row lock holds its
    connection, and a few of them must not stall every read. Outside the request's session:
    the request's own uncommitted writes are not seen, and a later failure of the request
    does not undo it."""

    def __init__(self, statement: sa.ClauseElement) -> None:
        super().__init__(statement)
        if is_plain_read(self.sql):
            raise ValueError("a plain read is a PreparedRead")

    async def fetch_one(self, db: Database, **values: Any) -> asyncpg.Record | None:
        async with db.atomic() as connection:
            return await connection.fetchrow(self.sql, *self._args(values))  # type: ignore[no-any-return]

    async def fetch_all(self, db: Database, **values: Any) -> list[asyncpg.Record]:
        async with db.atomic() as connection:
            return await connection.fetch(self.sql, *self._args(values))  # type: ignore[no-any-return]


async def _decode_json_as_sqlalchemy_does(connection: asyncpg.Connection) -> None:
    for name in ("json", "jsonb"):
        await connection.set_type_codec(name, encoder=json.dumps, decoder=json.loads, schema="pg_catalog")


async def _keep_session_state(connection: asyncpg.Connection) -> None:
    """The raw pools' reset: nothing. Their connections only ever run plain SELECTs and
    statements that are their own transaction, so there is no session state to clear, and
    asyncpg's default reset costs a round trip per use."""


class Database:
    """One service's engine and session factory (`read_session` for GET and HEAD)."""

    def __init__(self, url: str, settings: Settings | None = None, *, info: dict[str, Any] | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, settings)
        # "read", "atomic": opened on first use, each with its turns (see _open_raw_pool)
        self._raw_pools: dict[str, tuple[asyncpg.Pool, asyncio.Semaphore]] = {}
        self._raw_pools_lock = asyncio.Lock()
        self._read_pool_size = settings.db_read_pool_size if settings else 4
        self._pool_timeout = settings.db_pool_timeout_seconds if settings else 30
        # A Session subclass per Database, so its commit listener sees only this service's sessions.
        session_class: type[Session] = type("ServiceSession", (Session,), {})
        # `info` is copied into every session: it carries the service's outbox (see events.outbox).
        self.sessionmaker = async_sessionmaker(
            self.engine,
            expire_on_commit=False,
            autoflush=False,
            info=info or {},
            sync_session_class=session_class,
        )
        # Workers to wake after a commit that made work for them, by channel (see
        # `wake_after_commit`): requests and background jobs alike wake them at once.
        self._wakers: dict[str, list[Callable[[], None]]] = {}
        # Read-first sessions: the same pool, but no transaction until the first write.
        self.read_sessionmaker = async_sessionmaker(
            self.engine.execution_options(**{READ_FIRST: True}),
            expire_on_commit=False,
            autoflush=False,
            info=info or {},
            sync_session_class=session_class,
        )
        event.listen(self.engine.sync_engine, "before_cursor_execute", _transaction_on_first_write)
        event.listen(self.engine.sync_engine.pool, "checkin", _end_read_first)
        event.listen(session_class, "after_commit", self._after_commit)
        event.listen(session_class, "after_rollback", self._after_rollback)

    def on_commit(self, channel: str, wake: Callable[[], None]) -> Callable[[], None]:
        """Call `wake` after each commit of this Database's sessions that woke `channel`;
        returns the function that stops it."""
        wakers = self._wakers.setdefault(channel, [])
        wakers.append(wake)
        return lambda: wakers.remove(wake) if wake in wakers else None

    def _after_commit(self, session: Session) -> None:
        for channel in session.info.pop(_WAKE_CHANNELS, ()):
            self.wake(channel)

    def wake(self, channel: str) -> None:
        """Wake `channel`'s workers now: after a statement that committed on its own (a
        session's commit wakes those it was asked to, see `wake_after_commit`)."""
        for wake in list(self._wakers.get(channel, ())):
            wake()

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(_WAKE_CHANNELS, None)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    def raw(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection of the read pool, for `PreparedRead`: up to `db_read_pool_size` plain
        asyncpg connections, opened on first use. Errors come out as SQLAlchemy's would (a
        database that cannot serve is a 503, see problems.database_unavailable)."""
        return self._borrow("read")  # not a context manager of its own: one layer less per read

    def atomic(self) -> AbstractAsyncContextManager[asyncpg.Connection]:
        """A connection of the atomic pool, for `PreparedAtomic`: as many plain asyncpg
        connections as the read pool, but apart from it, so statements waiting on a row lock
        (each holds its connection) never leave the reads without one. asyncpg runs each
        statement in autocommit, so none leaves a transaction open behind it."""
        return self._borrow("atomic")

    @asynccontextmanager
    async def _borrow(self, name: str) -> AsyncIterator[asyncpg.Connection]:
        pool, turns = self._raw_pools.get(name) or await self._open_raw_pool(name)
        try:
            # asyncio.timeout, not acquire(timeout=): on Python 3.11 that is wait_for, a task per call.
            async with asyncio.timeout(self._pool_timeout):
                await turns.acquire()
                try:
                    connection = await pool.acquire()
                except BaseException:
                    turns.release()
                    raise
        except TimeoutError as exc:
            raise PoolTimeout(f"no {name} connection free in time") from exc
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError, OSError) as exc:
            raise OperationalError(f"{name} pool", None, exc, connection_invalidated=True) from exc
        try:
            yield connection
        except (asyncpg.PostgresConnectionError, asyncpg.InterfaceError, ConnectionError, OSError) as exc:
            raise OperationalError(f"{name} pool", None, exc, connection_invalidated=True) from exc
        except asyncpg.PostgresError as exc:
            raise DBAPIError(f"{name} pool", None, exc) from exc
        finally:
            try:
                await pool.release(connection)
            finally:
                turns.release()

    async def _open_raw_pool(self, name: str) -> tuple[asyncpg.Pool, asyncio.Semaphore]:
        """The pool `name` and its turns. Waiters for a connection take turns in arrival order:
        asyncpg's free list is an asyncio queue, where a newcomer takes the connection a woken
        waiter was about to get, and the waiter goes back to the end of the line. Under load
        that left some requests waiting hundreds of milliseconds, and woke waiters for
        nothing (members' GET /v1/members/{id} at saturation on 4 connections: p99 about
        200 ms; in turns, under 20 ms)."""
        async with self._raw_pools_lock:
            opened = self._raw_pools.get(name)
            if opened is None:
                url = make_url(self.url).set(drivername="postgresql")
                pool = await asyncpg.create_pool(
                    url.render_as_string(hide_password=False),
                    min_size=0,
                    max_size=self._read_pool_size,
                    init=_decode_json_as_sqlalchemy_does,
                    reset=_keep_session_state,
                    max_inactive_connection_lifetime=300,
                )
                # asyncio's Semaphore hands a released turn to the longest waiter (FIFO).
                opened = self._raw_pools[name] = (pool, asyncio.Semaphore(self._read_pool_size))
        return opened

    async def dispose(self) -> None:
        pools, self._raw_pools = self._raw_pools, {}
        for pool, _turns in pools.values():
            await pool.close()
        await self.engine.dispose()

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    def read_session(self) -> AsyncSession:
        """A session whose transaction begins at its first write (none if it only reads)."""
        return self.read_sessionmaker()

    async def commit(self, session: AsyncSession) -> None:
        """Commit (a commit that made work wakes its workers, see `wake_after_commit`)."""
        await session.commit()


_WAKE_CHANNELS = "wake_channels"


def wake_after_commit(session: AsyncSession | Session, channel: str) -> None:
    """Wake the workers listening on `channel` (`Database.on_commit`) once this session's
    transaction commits; a rollback wakes nobody. The one way to say "there is new work"."""
    info = session.info
    channels: set[str] = info.setdefault(_WAKE_CHANNELS, set())
    channels.add(channel)


RollbackHook = Callable[[], Awaitable[None]]
_ROLLBACK_HOOKS = "rollback_hooks"


def on_rollback(session: AsyncSession, hook: RollbackHook) -> None:
    """Run `hook` if the request's transaction ends in a rollback (a later error in the
    route, or a failed commit): undo what was done outside the transaction."""
    session.info.setdefault(_ROLLBACK_HOOKS, []).append(hook)


async def _rolled_back(session: AsyncSession) -> None:
    await session.rollback()
    hooks: list[RollbackHook] = session.info.pop(_ROLLBACK_HOOKS, [])
    for hook in hooks:
        try:
            await hook()
        except Exception:  # the original error matters more than a failed clean-up
            log.exception("rollback_hook_failed")


_READ_METHODS = frozenset({"GET", "HEAD"})


@asynccontextmanager
async def transaction(db: Database, *, read_first: bool = False) -> AsyncIterator[AsyncSession]:
    """A session that commits once when the block succeeds and rolls back on error (then
    runs its `on_rollback` hooks): the request's (`get_session`), or one a route opens
    itself when only some requests need it. `read_first`: see `Database.read_session`."""
    async with db.read_session() if read_first else db.session() as session:
        try:
            yield session
        except BaseException:
            await _rolled_back(session)
            raise
        try:
            await db.commit(session)
        except BaseException:
            await _rolled_back(session)
            raise
        session.info.pop(_ROLLBACK_HOOKS, None)


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: commits once after the route succeeds, rolls back on error.

    A GET or HEAD gets a read-first session: no BEGIN/COMMIT unless it writes."""
    async with transaction(request.app.state.db, read_first=request.method in _READ_METHODS) as session:
        yield session


# scope="function": the commit runs before the response is sent, so a failed commit is an
# error answer, never a 2xx for a change that did not happen.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]


async def get_database(request: Request) -> Database:
    """The service's Database (for `PreparedRead`s, which need no session)."""
    return request.app.state.db  # type: ignore[no-any-return]


DatabaseDep = Annotated[Database, Depends(get_database)]
