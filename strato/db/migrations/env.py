"""Alembic environment for strato.

Normally run by :func:`strato.db.migrate.upgrade`, which hands over an open connection
in ``config.attributes["connection"]``. Run from the ``alembic`` CLI
(``alembic -c strato/db/migrations/alembic.ini upgrade head``) it opens its own async
engine from ``sqlalchemy.url`` or ``$STRATO_DB__URL``.
"""

from __future__ import annotations

import asyncio
import os

from alembic import context
from sqlalchemy.engine import Connection

from strato.db._engine import create_engine
from strato.db.tables import metadata

config = context.config


def _run(connection: Connection) -> None:
    # Batch mode lets later migrations ALTER tables on SQLite (by copy-and-move).
    context.configure(connection=connection, target_metadata=metadata,
                      render_as_batch=True, compare_type=True)
    with context.begin_transaction():
        context.run_migrations()


async def _run_with_own_engine(url: str) -> None:
    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=metadata, literal_binds=True,
                      render_as_batch=True)
    with context.begin_transaction():
        context.run_migrations()


def _url() -> str:
    url = config.get_main_option("sqlalchemy.url") or os.environ.get("STRATO_DB__URL")
    if not url:
        raise SystemExit("set sqlalchemy.url or STRATO_DB__URL")
    return url


def main() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
    elif context.is_offline_mode():
        _run_offline(_url())
    else:
        asyncio.run(_run_with_own_engine(_url()))


main()
