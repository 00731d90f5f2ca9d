"""The database: every repository, grouped (its adapter: :class:`strato.db.sql.SqlDatabase`)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from strato.db.ports.actions import ActionRepo
from strato.db.ports.aggregates import AggregateRepo
from strato.db.ports.catalog import FlavorRepo
from strato.db.ports.identity import IdentityRepo
from strato.db.ports.images import ImageRepo
from strato.db.ports.instances import InstanceRepo
from strato.db.ports.keypairs import KeyPairRepo
from strato.db.ports.networks import NetworkRepo
from strato.db.ports.nodes import NodeRepo
from strato.db.ports.placement import PlacementRepo
from strato.db.ports.quotas import QuotaRepo
from strato.db.ports.security_groups import SecurityGroupRepo
from strato.db.ports.server_groups import ServerGroupRepo
from strato.db.ports.services import ServiceRepo

__all__ = ["Database"]


class Database(Protocol):
    identity: IdentityRepo
    instances: InstanceRepo
    flavors: FlavorRepo
    images: ImageRepo
    nodes: NodeRepo
    services: ServiceRepo
    actions: ActionRepo
    quotas: QuotaRepo
    aggregates: AggregateRepo
    groups: ServerGroupRepo
    placement: PlacementRepo
    networks: NetworkRepo
    security_groups: SecurityGroupRepo
    key_pairs: KeyPairRepo

    def now(self) -> datetime:
        """The clock every repository stamps rows with."""
        ...

    async def close(self) -> None: ...
