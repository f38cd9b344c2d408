"""Database plumbing shared by the services: metadata, engines, the one commit point.

Each service owns a `MetaData` (with a naming convention so constraints have stable
names in migrations) and a `Database` (engine + sessionmaker) created in its lifespan.
A request's session commits once, in `get_session`, after the route returns and before
the answer is sent: service functions only `add`/`flush`, so a state change and its
outbox row always land in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
import structlog
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import NullPool

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
        pool_size=settings.db_pool_size if settings else 10,
        max_overflow=settings.db_max_overflow if settings else 10,
        pool_timeout=settings.db_pool_timeout_seconds if settings else 30,
        # No ping on every checkout (a round trip per request): connections are recycled
        # after 30 min, and one broken by a database restart is invalidated on first use.
        pool_recycle=1800,
        hide_parameters=True,
    )


class Database:
    """One service's engine and session factory."""

    def __init__(self, url: str, settings: Settings | None = None, *, info: dict[str, Any] | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, settings)
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
            for wake in list(self._wakers.get(channel, ())):
                wake()

    @staticmethod
    def _after_rollback(session: Session) -> None:
        session.info.pop(_WAKE_CHANNELS, None)

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    def session(self) -> AsyncSession:
        return self.sessionmaker()

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


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: commits once after the route succeeds, rolls back on error."""
    db: Database = request.app.state.db
    async with db.session() as session:
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


# scope="function": the commit runs before the response is sent, so a failed commit is an
# error answer, never a 2xx for a change that did not happen.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
