"""The SQL adapter of the database port: :class:`SqlDatabase`, on SQLAlchemy 2 asyncio.

One code path for SQLite (``sqlite+aiosqlite:///path``, the default, WAL mode) and
PostgreSQL (``postgresql+asyncpg://user@host/db``). Run :func:`strato.db.migrate.upgrade`
first; this module never creates tables. Every repository method is one transaction,
and driver errors leave it only as domain errors (``Conflict``, ``NotFound``,
``InvalidState``, ``Invalid``, ``Unavailable``).
"""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa

from strato.db._actions import SqlActionRepo
from strato.db._aggregates import SqlAggregateRepo
from strato.db._catalog import SqlFlavorRepo
from strato.db._engine import (
    Clock,
    SqliteWriter,
    Store,
    create_engine,
    is_sqlite,
    translate_errors,
    utc_now,
)
from strato.db._identity import SqlIdentityRepo
from strato.db._images import SqlImageRepo
from strato.db._instances import SqlInstanceRepo
from strato.db._keypairs import SqlKeyPairRepo
from strato.db._networks import SqlNetworkRepo
from strato.db._nodes import COMPUTE_BINARY, SqlNodeRepo
from strato.db._placement import SqlPlacementRepo
from strato.db._quotas import SqlQuotaRepo
from strato.db._security_groups import SqlSecurityGroupRepo
from strato.db._server_groups import SqlServerGroupRepo
from strato.db._services import SqlServiceRepo
from strato.db.ports import (
    ActionRepo,
    AggregateRepo,
    FlavorRepo,
    IdentityRepo,
    ImageRepo,
    InstanceRepo,
    KeyPairRepo,
    NetworkRepo,
    NodeRepo,
    PlacementRepo,
    QuotaRepo,
    SecurityGroupRepo,
    ServerGroupRepo,
    ServiceRepo,
)

__all__ = ["COMPUTE_BINARY", "SqlDatabase"]


class SqlDatabase:
    """The :class:`strato.db.ports.database.Database` on SQL; build it with :meth:`open`."""

    def __init__(self, store: Store) -> None:
        self._store = store
        # Typed as the ports: the Protocol's attributes are mutable, hence invariant, and
        # the annotations make mypy check each repository against its Protocol here.
        self.identity: IdentityRepo = SqlIdentityRepo(store)
        self.instances: InstanceRepo = SqlInstanceRepo(store)
        self.flavors: FlavorRepo = SqlFlavorRepo(store)
        self.images: ImageRepo = SqlImageRepo(store)
        self.nodes: NodeRepo = SqlNodeRepo(store)
        self.services: ServiceRepo = SqlServiceRepo(store)
        self.actions: ActionRepo = SqlActionRepo(store)
        self.quotas: QuotaRepo = SqlQuotaRepo(store)
        self.aggregates: AggregateRepo = SqlAggregateRepo(store)
        self.placement: PlacementRepo = SqlPlacementRepo(store)
        self.networks: NetworkRepo = SqlNetworkRepo(store)
        self.security_groups: SecurityGroupRepo = SqlSecurityGroupRepo(store)
        self.groups: ServerGroupRepo = SqlServerGroupRepo(store)
        self.key_pairs: KeyPairRepo = SqlKeyPairRepo(store)

    @classmethod
    async def open(cls, url: str, *, clock: Clock | None = None,
                   service_down_time: float = 60.0) -> SqlDatabase:
        """Connect to the (already migrated) database at ``url``.

        ``clock`` returns the current time (default: now in UTC); tests inject a fake
        one. ``service_down_time`` is how many seconds after its last heartbeat a service
        still counts as up. Raises ``Unavailable`` if the database cannot be reached.
        """
        engine = create_engine(url)
        try:
            # Fail here, at startup, rather than on the first request.
            with translate_errors():
                async with engine.connect() as conn:
                    await conn.execute(sa.text("SELECT 1"))
        except BaseException:
            await engine.dispose()
            raise
        sqlite = is_sqlite(url)
        return cls(Store(engine=engine, clock=clock or utc_now,
                         service_down_time=service_down_time,
                         writer=SqliteWriter(create_engine(url, pool_size=1))
                         if sqlite else None))

    def now(self) -> datetime:
        """The database's clock (the injected one in tests)."""
        return self._store.now()

    async def close(self) -> None:
        """Close every pooled connection; the object is unusable afterwards."""
        await self._store.engine.dispose()
        if self._store.writer is not None:
            await self._store.writer.close()
