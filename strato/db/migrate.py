"""Bring a database to the newest schema: ``await upgrade(url)``.

Runs Alembic programmatically over the package's own ``migrations`` folder, so it works
from any working directory and from an installed wheel. The same engine settings as
:mod:`strato.db.sql` are used (WAL and serialized writers on SQLite).
"""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.config import Config
from sqlalchemy.engine import Connection, make_url

from strato.db._engine import create_engine, is_sqlite, translate_errors

__all__ = ["MIGRATIONS_DIR", "alembic_config", "upgrade"]

MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

# The advisory lock's name: any 64-bit number, as long as every process uses the same.
_PG_LOCK_KEY = int.from_bytes(b"strato", "big")


def alembic_config() -> Config:
    """An Alembic config for the package's migrations, independent of the cwd and of any
    alembic.ini (``migrations/alembic.ini`` exists only for the ``alembic`` CLI)."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    return config


async def upgrade(url: str) -> None:
    """Apply every pending migration to the database at ``url``
    (``sqlite+aiosqlite:///path`` or ``postgresql+asyncpg://user@host/db``).

    For a SQLite file, its directory is created first and the file switched to WAL.
    Raises ``Unavailable`` when the database cannot be reached.
    """
    if is_sqlite(url):
        _make_sqlite_dir(url)
    engine = create_engine(url)  # on SQLite its connect hook turns WAL on
    try:
        with translate_errors():
            async with engine.connect() as conn:
                # Several processes of one cluster may start (and upgrade) at once: they
                # take turns. SQLite: a write transaction is BEGIN IMMEDIATE. PostgreSQL:
                # a transaction-scoped advisory lock (its DDL is transactional, so the
                # next process then finds the schema current).
                await conn.execution_options(strato_write=True)
                async with conn.begin():
                    if conn.dialect.name == "postgresql":
                        await conn.execute(sa.text("SELECT pg_advisory_xact_lock(:key)"),
                                           {"key": _PG_LOCK_KEY})
                    await conn.run_sync(_upgrade_sync, alembic_config())
    finally:
        await engine.dispose()


def _upgrade_sync(connection: Connection, config: Config) -> None:
    # migrations/env.py runs on this connection instead of opening its own.
    config.attributes["connection"] = connection
    command.upgrade(config, "head")


def _make_sqlite_dir(url: str) -> None:
    database = make_url(url).database
    if database and database != ":memory:" and not database.startswith("file:"):
        Path(database).expanduser().parent.mkdir(parents=True, exist_ok=True)
