"""Database plumbing shared by the services: metadata, engines, the one commit point.

Each service owns a `MetaData` (with a naming convention so constraints have stable
names in migrations) and a `Database` (engine + sessionmaker) created in its lifespan.
A request's session commits once, in `get_session`, after the route returns and before
the answer is sent: service functions only `add`/`flush`, so a state change and its
outbox row always land in one transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Annotated, Any

import sqlalchemy as sa
from fastapi import Depends, Request
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker, create_async_engine
from sqlalchemy.orm import registry
from sqlalchemy.pool import NullPool
from sqlmodel import SQLModel

from services.common.settings import Settings

NAMING_CONVENTION = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


def new_metadata() -> sa.MetaData:
    return sa.MetaData(naming_convention=NAMING_CONVENTION)


def model_base(metadata: sa.MetaData) -> type[SQLModel]:
    """A SQLModel base bound to one service's metadata, so tables never leak across services."""

    class ServiceModel(SQLModel, registry=registry(metadata=metadata)):
        pass

    return ServiceModel


def utcnow() -> datetime:
    return datetime.now(UTC)


def new_id() -> uuid.UUID:
    return uuid.uuid4()


class UTCDateTime(sa.types.TypeDecorator[datetime]):
    """A timezone-aware timestamp on every backend (SQLite stores naive text; we store UTC)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    @property
    def python_type(self) -> type[datetime]:
        # TypeDecorator answers `object`; keyset cursors need the real type to decode values.
        return datetime

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def is_sqlite(url: str) -> bool:
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, settings: Settings | None = None, *, pool: bool = True) -> AsyncEngine:
    """An async engine: SQLite in WAL mode with a busy timeout, or a pooled asyncpg engine."""
    if is_sqlite(url):
        engine = create_async_engine(url, connect_args={"timeout": 30})

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    if not pool:
        return create_async_engine(url, poolclass=NullPool)
    return create_async_engine(
        url,
        pool_size=settings.db_pool_size if settings else 10,
        max_overflow=settings.db_max_overflow if settings else 10,
        pool_pre_ping=True,
        pool_recycle=1800,
    )


class Database:
    """One service's engine and session factory."""

    def __init__(self, url: str, settings: Settings | None = None, *, info: dict[str, Any] | None = None) -> None:
        self.url = url
        self.engine = create_engine(url, settings)
        # `info` is copied into every session: it carries the service's outbox (see events.outbox).
        self.sessionmaker = async_sessionmaker(self.engine, expire_on_commit=False, autoflush=False, info=info or {})
        # Called after each commit that wrote outbox rows, to wake the relay at once.
        self.on_outbox_commit: Callable[[], None] | None = None

    @property
    def is_sqlite(self) -> bool:
        return self.engine.dialect.name == "sqlite"

    async def ping(self) -> None:
        async with self.engine.connect() as conn:
            await conn.execute(sa.text("SELECT 1"))

    async def dispose(self) -> None:
        await self.engine.dispose()

    def session(self) -> AsyncSession:
        return self.sessionmaker()

    async def commit(self, session: AsyncSession) -> None:
        """Commit and, if the transaction wrote events, wake the relay."""
        await session.commit()
        if session.info.pop("outbox_written", False) and self.on_outbox_commit:
            self.on_outbox_commit()


async def get_session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's session: commits once after the route succeeds, rolls back on error."""
    db: Database = request.app.state.db
    async with db.session() as session:
        try:
            yield session
        except BaseException:
            await session.rollback()
            raise
        await db.commit(session)


# scope="function": the commit runs before the response is sent, so a failed commit is an
# error answer, never a 2xx for a change that did not happen.
SessionDep = Annotated[AsyncSession, Depends(get_session, scope="function")]
