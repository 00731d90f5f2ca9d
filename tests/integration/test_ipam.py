"""IPAM in the SQL adapter, on SQLite and PostgreSQL: 130 ports created at once (each
its own transaction, over several connection pools) on a /25 whose gateway is .1 get
exactly the pool's 125 addresses, each once; the other 5 find the subnet full."""

# The fixtures imported by name below come back as test parameters of the same name.
# ruff: noqa: F811

from __future__ import annotations

import asyncio
import ipaddress

from strato.db.sql import SqlDatabase
from strato.domain.errors import Conflict
from strato.domain.ids import ProjectId, new_uuid
from strato.domain.networks import Network, Port, Subnet, default_pools
from tests.db_fixtures import (  # noqa: F401 (fixtures are found by name)
    FakeClock,
    backend_url,
    clock,
    db,
    db_url,
    open_db,
    pg_url,
)

OWNER = ProjectId("p-owner")


async def test_concurrent_allocations_fill_the_pool_exactly(
        db: SqlDatabase, db_url: str, clock: FakeClock) -> None:
    net = await db.networks.create_network(Network(id=new_uuid(), name="n", project_id=OWNER,
                                                   shared=True))
    cidr = "10.9.0.0/25"
    sub = await db.networks.create_subnet(Subnet(
        id=new_uuid(), network_id=net.id, project_id=OWNER, name="s", ip_version=4,
        cidr=cidr, gateway_ip="10.9.0.1", allocation_pools=default_pools(cidr, "10.9.0.1")),
        owner=OWNER)
    others = [await open_db(db_url, clock) for _ in range(2)]
    pools = [db, *others]
    try:
        async def one(n: int) -> Port:
            # Ten projects: the quota lock serialises one project's creates only.
            port = Port(id=new_uuid(), network_id=net.id, project_id=ProjectId(f"p{n % 10}"),
                        mac_address="")
            return await pools[n % len(pools)].networks.create_port(port, fixed_ips=None,
                                                                    viewer=None)

        results = await asyncio.gather(*(one(n) for n in range(130)), return_exceptions=True)
    finally:
        for other in others:
            await other.close()
    ports = [r for r in results if isinstance(r, Port)]
    failures = [r for r in results if not isinstance(r, Port)]
    assert len(ports) == 125
    assert len(failures) == 5
    assert all(isinstance(f, Conflict) and "No more IP addresses" in str(f) for f in failures)
    addresses = [p.fixed_ips[0].ip_address for p in ports]
    assert all(p.fixed_ips[0].subnet_id == sub.id for p in ports)
    assert len(set(addresses)) == 125
    hosts = {str(ipaddress.ip_address(f"10.9.0.{i}")) for i in range(2, 127)}
    assert set(addresses) == hosts
    assert len({p.mac_address for p in ports}) == 125
    listed = await db.networks.list_ports(viewer=None)
    assert len(listed) == 125
