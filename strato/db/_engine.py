"""Engines and transactions for both backends, and the one place driver errors become
domain errors.

SQLite needs help to be safe under concurrent writers. Python's sqlite3 opens a
*deferred* transaction, which takes the write lock only at the first write; two such
transactions that both read then write can fail with "database is locked" at once (the
busy timeout does not apply when upgrading a read lock in WAL mode). So SQLAlchemy emits
BEGIN itself here: ``BEGIN IMMEDIATE`` for write transactions, which waits (busy timeout)
for the write lock up front and so serializes writers, and a plain BEGIN for reads, which
WAL lets run beside a writer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager, suppress
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from typing import Any

import asyncpg
import sqlalchemy as sa
from sqlalchemy import exc as sa_exc
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import URL, Connection, make_url
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine, create_async_engine

from strato.db._sqlite import INLINE_BUSY_TIMEOUT, connect_inline
from strato.domain.errors import Conflict, Invalid, StratoError, Unavailable

__all__ = ["Clock", "SqliteWriter", "Store", "create_engine", "domain_error", "is_sqlite",
           "translate_errors", "upsert", "utc_now"]

Clock = Callable[[], datetime]

# Seconds a SQLite writer waits for another process's write lock before giving up.
SQLITE_BUSY_TIMEOUT = INLINE_BUSY_TIMEOUT

# Execution option marking a connection whose next transaction will write.
_WRITE = "strato_write"


def utc_now() -> datetime:
    """The default clock: now, timezone-aware, in UTC."""
    return datetime.now(UTC)


def is_sqlite(url: str | URL) -> bool:
    """Whether the URL names a SQLite database."""
    return make_url(url).get_backend_name() == "sqlite"


def create_engine(url: str, *, pool_size: int = 5) -> AsyncEngine:
    """An async engine for ``url`` (``sqlite+aiosqlite`` or ``postgresql+asyncpg``),
    configured as :class:`Store` expects (WAL, busy timeout and explicit BEGIN on SQLite)."""
    if not is_sqlite(url):
        # pre_ping: after a database restart, requests get fresh connections instead
        # of failing once on each stale pooled one.
        return create_async_engine(url, pool_pre_ping=True)
    if make_url(url).database in (None, "", ":memory:"):
        # Each pooled connection would see its own empty database, and upgrade() would
        # migrate one that is gone when it returns.
        raise Invalid("an in-memory SQLite database is not supported; use a file")
    path = make_url(url).database or ""
    engine = create_async_engine(url, async_creator=partial(connect_inline, path),
                                 pool_size=pool_size, max_overflow=0 if pool_size == 1 else 10)
    sa.event.listen(engine.sync_engine, "connect", _on_sqlite_connect)
    sa.event.listen(engine.sync_engine, "begin", _on_sqlite_begin)
    return engine


def _on_sqlite_connect(dbapi_connection: Any, _record: Any) -> None:
    # Stop the driver from emitting its own deferred BEGIN: _on_sqlite_begin does it.
    dbapi_connection.isolation_level = None
    cursor = dbapi_connection.cursor()
    # WAL: readers never block the writer nor each other. The mode is stored in the
    # file, so only the first connection to a new file has to switch it.
    cursor.execute("PRAGMA journal_mode")
    if cursor.fetchone()[0].lower() != "wal":
        cursor.execute("PRAGMA journal_mode=WAL")
    # NORMAL sync is crash-safe in WAL mode; foreign keys are off in SQLite by default.
    for pragma in ("synchronous=NORMAL", "foreign_keys=ON",
                   f"busy_timeout={int(SQLITE_BUSY_TIMEOUT * 1000)}"):
        cursor.execute(f"PRAGMA {pragma}")
    cursor.close()


def _on_sqlite_begin(conn: Connection) -> None:
    mode = "IMMEDIATE" if conn.get_execution_options().get(_WRITE) else "DEFERRED"
    conn.exec_driver_sql(f"BEGIN {mode}")


# What a PostgreSQL error means to the caller, by SQLSTATE class (its first two
# characters) or full code: the request's data cannot be stored (22: NUL bytes, bad
# regular expressions, numbers out of range, strings too long) or the database cannot
# answer now (08: connection, 40: serialization failure or deadlock, 53: insufficient
# resources, 55P03: lock not available, 57: shutdown or cancelled, 58: I/O).
_INVALID_SQLSTATES = frozenset({"22"})
_UNAVAILABLE_SQLSTATES = frozenset({"08", "40", "53", "55P03", "57", "58"})
# Driver errors that mean "could not reach the database or lost it".
_UNAVAILABLE_TYPES: tuple[type[BaseException], ...] = (
    sa_exc.OperationalError, sa_exc.InterfaceError, sa_exc.TimeoutError, OSError,
    asyncpg.InterfaceError)


@contextmanager
def translate_errors(conflict: str | None = None) -> Iterator[None]:
    """Re-raise driver errors as domain errors (see :func:`domain_error`); anything else,
    domain errors included, passes unchanged."""
    try:
        yield
    except Exception as exc:
        error = domain_error(exc, conflict)
        if error is None:
            raise
        raise error from exc


def domain_error(exc: Exception, conflict: str | None = None) -> StratoError | None:
    """The domain error for a driver error, ``None`` for any other exception (a bug):
    a constraint violation is ``Conflict`` (with the ``conflict`` message when given),
    data the database refuses ``Invalid``, a lost, busy or stopping database
    ``Unavailable`` (its reason in ``details``, for the log, not the client)."""
    if isinstance(exc, StratoError):
        return None
    if isinstance(exc, sa_exc.IntegrityError) or _sqlstate_in(exc, frozenset({"23"})):
        return Conflict(conflict or f"conflicts with an existing record ({_reason(exc)})")
    if isinstance(exc, sa_exc.DataError) or _sqlstate_in(exc, _INVALID_SQLSTATES):
        return Invalid(f"invalid value ({_reason(exc)})")
    if (isinstance(exc, _UNAVAILABLE_TYPES) or _sqlstate_in(exc, _UNAVAILABLE_SQLSTATES)
            or (isinstance(exc, sa_exc.DBAPIError) and exc.connection_invalidated)):
        return Unavailable("The database is unavailable; try again later.",
                           details=_reason(exc))
    return None


def _sqlstate_in(exc: BaseException, codes: frozenset[str]) -> bool:
    """Whether the PostgreSQL error behind ``exc`` (SQLAlchemy's wrapper, its adapted
    DBAPI error, or asyncpg's own) has a SQLSTATE whose class or code is in ``codes``."""
    for candidate in (exc, getattr(exc, "orig", None), exc.__cause__):
        code = getattr(candidate, "sqlstate", None)
        if isinstance(code, str) and (code[:2] in codes or code in codes):
            return True
    return False


def _reason(exc: BaseException) -> str:
    orig = getattr(exc, "orig", None) or exc
    return str(orig).strip().splitlines()[0] if str(orig).strip() else type(orig).__name__


@dataclass(frozen=True, slots=True)
class Store:
    """What every repository shares: the engine, the clock and the liveness window.

    ``read()`` and ``write()`` each open one transaction on a pooled connection; every
    repository method uses exactly one of them, so each method is one transaction.
    """

    engine: AsyncEngine
    clock: Clock
    service_down_time: float
    # SQLite only: the one connection every write of this process goes through.
    writer: SqliteWriter | None = None

    def now(self) -> datetime:
        """The injected clock's time, normalised to UTC."""
        return self.clock().astimezone(UTC)

    @property
    def dialect(self) -> str:
        """``sqlite`` or ``postgresql``."""
        return self.engine.dialect.name

    @asynccontextmanager
    async def read(self) -> AsyncIterator[AsyncConnection]:
        """A read-only transaction (it still sees one consistent snapshot on SQLite)."""
        async with self._transaction(write=False, conflict=None) as conn:
            yield conn

    @asynccontextmanager
    async def write(self, *, conflict: str | None = None) -> AsyncIterator[AsyncConnection]:
        """A write transaction: committed on normal exit, rolled back on any exception.
        ``conflict`` is the ``Conflict`` message should a constraint fail."""
        if self.writer is None:
            async with self._transaction(write=True, conflict=conflict) as conn:
                yield conn
            return
        with translate_errors(conflict):
            async with self.writer.transaction() as conn:
                yield conn

    @asynccontextmanager
    async def _transaction(self, *, write: bool,
                           conflict: str | None) -> AsyncIterator[AsyncConnection]:
        # The error translation wraps the commit too: PostgreSQL can report a deferred
        # constraint only there.
        with translate_errors(conflict):
            async with self.engine.connect() as conn:
                if write:
                    await conn.execution_options(**{_WRITE: True})
                async with conn.begin():
                    yield conn


class SqliteWriter:
    """The one connection through which this process writes a SQLite database.

    SQLite allows one writer at a time. Writers of this process queue on an asyncio lock,
    in FIFO order, instead of in SQLite's busy handler (which sleeps in steps of up to
    100 ms and turned a burst of 50 creates into seconds of waiting). The connection stays
    open between transactions: checking one out of a pool and closing it again each time
    costs SQLAlchemy a task and three turns of the event loop, all inside the lock, so
    under load every other writer waited for the loop to serve everything else three
    times per write. BEGIN IMMEDIATE (above) still serialises other processes.
    """

    def __init__(self, engine: AsyncEngine) -> None:
        self.engine = engine
        self._lock = asyncio.Lock()
        self._conn: AsyncConnection | None = None

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[AsyncConnection]:
        """One write transaction: committed on normal exit, rolled back on an exception."""
        async with self._lock:
            conn = self._conn
            if conn is None or conn.closed or conn.invalidated:
                conn = self._conn = await self.engine.connect()
                await conn.execution_options(**{_WRITE: True})
            try:
                async with conn.begin():
                    yield conn
            except (sa_exc.OperationalError, sa_exc.InterfaceError, OSError):
                # The connection may be broken: the next writer opens a fresh one.
                self._conn = None
                with suppress(sa_exc.SQLAlchemyError, OSError):
                    await conn.invalidate()
                raise

    async def close(self) -> None:
        """Close the connection (after the writer in flight, if any) and the engine."""
        async with self._lock:
            if self._conn is not None:
                with suppress(sa_exc.SQLAlchemyError, OSError):
                    await self._conn.close()
                self._conn = None
        await self.engine.dispose()


def upsert(dialect: str, table: sa.Table, rows: list[dict[str, Any]], *,
           keys: tuple[str, ...], update: tuple[str, ...],
           extra: dict[str, Any] | None = None) -> sa.Executable:
    """``INSERT ... ON CONFLICT (keys) DO UPDATE SET update-columns`` for ``rows``
    (plus the ``extra`` column expressions, e.g. a counter's increment).

    Both backends spell it the same way, but through their own dialect's ``insert``.
    One statement, so two first-time writers cannot both insert.
    """
    insert = postgresql.insert(table) if dialect == "postgresql" else sqlite.insert(table)
    stmt = insert.values(rows)
    return stmt.on_conflict_do_update(
        index_elements=list(keys),
        set_={**{col: stmt.excluded[col] for col in update}, **(extra or {})})
