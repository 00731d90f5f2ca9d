"""``NodeRepo`` on SQL: node capacities, usage, and atomic claims against them.

A claim is one conditional UPDATE per node: ``used = used + need WHERE used + need <=
limit``. The database checks and adds in one step, so no claim can see stale usage:
PostgreSQL (read committed) locks the row and re-checks the condition against the
newest version when a concurrent claim commits first; SQLite writers are serialized by
``BEGIN IMMEDIATE`` (see ``_engine``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import AsyncConnection

from strato.db import tables as t
from strato.db._engine import Store, upsert
from strato.db._rows import (
    capacity_from_row,
    capacity_values,
    instance_from_row,
    is_up,
    node_record,
    used_from_row,
)
from strato.db.ports import (
    AllocationHealing,
    ComputeServiceState,
    HealedAllocation,
    NodeChanges,
    NodeRecord,
)
from strato.domain.aggregates import AZ_KEY
from strato.domain.errors import NotFound
from strato.domain.ids import HostName, InstanceId, NodeName
from strato.domain.instances import Instance, holds_resources
from strato.domain.requests import Destination
from strato.domain.resources import Allocation, NodeCapacity, NodeUsage, Resources

__all__ = ["COMPUTE_BINARY", "SqlNodeRepo", "release_allocations"]

# The service whose heartbeat says whether a node's host is up.
COMPUTE_BINARY = "strato-compute"

_N = t.compute_nodes.c
_A = t.allocations.c
_S = t.services.c
_I = t.instances.c


class _NoRoom(Exception):
    """Raised inside a claim's transaction to roll it back: the node is full."""


@dataclass(frozen=True, slots=True)
class _Held:
    node_id: int
    resources: Resources


class SqlNodeRepo:
    """Nodes in ``compute_nodes`` and claims in ``allocations``
    (see :class:`strato.db.ports.nodes.NodeRepo`)."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def report(self, capacities: Sequence[NodeCapacity]) -> None:
        """Insert or update each node's totals, ratios and reserved amounts; usage is
        never touched here (only claims and releases change it)."""
        if not capacities:
            return
        now = self._store.now()
        rows = [{**capacity_values(cap), "created_at": now, "updated_at": now}
                for cap in capacities]
        columns = tuple(k for k in rows[0] if k not in ("host", "node", "created_at"))
        stmt = upsert(self._store.dialect, t.compute_nodes, rows,
                      keys=("host", "node"), update=columns,
                      extra={"generation": _N.generation + 1})
        async with self._store.write() as conn:
            await conn.execute(stmt)

    async def usages(self) -> list[NodeUsage]:
        """Every node (by host, node) with its usage and its compute service's state; a
        node whose service never reported counts as down."""
        service = sa.and_(_S.host == _N.host, _S.binary == COMPUTE_BINARY)
        query = (sa.select(t.compute_nodes, _S.last_seen, _S.disabled.label("svc_disabled"),
                           _S.disabled_reason)
                 .select_from(t.compute_nodes.outerjoin(t.services, service))
                 .order_by(_N.host, _N.node))
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
        now = self._store.now()
        return [NodeUsage(capacity=capacity_from_row(row), used=used_from_row(row),
                          instances=row.running_vms,
                          service_up=is_up(row.last_seen, now, self._store.service_down_time),
                          service_disabled=bool(row.svc_disabled),
                          disabled_reason=row.disabled_reason)
                for row in rows]

    async def exists(self, *, host: HostName | None = None, node: NodeName | None = None,
                     unzoned: bool = False) -> bool:
        """Whether a compute node is on ``host``, is called ``node``, and (``unzoned``)
        is on a host that no aggregate puts in an availability zone."""
        query = sa.select(_N.id).limit(1)
        if host is not None:
            query = query.where(_N.host == host)
        if node is not None:
            query = query.where(_N.node == node)
        if unzoned:
            zoned = (sa.select(t.aggregate_hosts.c.host)
                     .join(t.aggregate_metadata, t.aggregate_metadata.c.aggregate_id
                           == t.aggregate_hosts.c.aggregate_id)
                     .where(t.aggregate_metadata.c.key == AZ_KEY))
            query = query.where(_N.host.not_in(zoned))
        async with self._store.read() as conn:
            return (await conn.execute(query)).first() is not None

    async def claim(self, instance_id: InstanceId, dest: Destination, need: Resources) -> bool:
        """Allocate ``need`` on ``dest`` for the instance, first releasing whatever it
        holds, all in one transaction. False, with nothing changed, when it does not
        fit; ``NotFound`` for an unknown node."""
        return await self.claim_node(instance_id, dest, need) is not None

    async def claim_node(self, instance_id: InstanceId, dest: Destination,
                         need: Resources) -> NodeRecord | None:
        """:meth:`claim`, answering the node's row as the claim left it (None when it
        did not fit)."""
        now = self._store.now()
        try:
            async with self._store.write() as conn:
                target = await _node_id(conn, dest)
                held = await _delete_allocations(conn, instance_id)
                await _move(conn, held, target, need, now)
                await conn.execute(t.allocations.insert().values(
                    instance_uuid=instance_id, compute_node_id=target, vcpus=need.vcpus,
                    memory_mb=need.memory_mb, disk_gb=need.disk_gb, created_at=now))
                row = (await conn.execute(
                    sa.select(t.compute_nodes).where(_N.id == target))).one()
        except _NoRoom:
            return None  # the transaction rolled back, the old allocation included
        return node_record(row)

    async def changes(self, since: datetime | None) -> NodeChanges:
        """The nodes and compute services whose rows changed at or after ``since``
        (every one when ``None``), read in one snapshot; ``read_at`` is the clock
        before the read, the ``since`` of the next call (less a safety margin for
        transactions that were still committing)."""
        nodes = sa.select(t.compute_nodes)
        services = (sa.select(_S.host, _S.last_seen, _S.disabled, _S.disabled_reason)
                    .where(_S.binary == COMPUTE_BINARY))
        if since is not None:
            nodes = nodes.where(_N.updated_at >= since)
            services = services.where(_S.updated_at >= since)
        read_at = self._store.now()
        async with self._store.read() as conn:
            node_rows = (await conn.execute(nodes)).all()
            service_rows = (await conn.execute(services)).all()
        return NodeChanges(
            nodes=tuple(node_record(row) for row in node_rows),
            services=tuple(ComputeServiceState(host=HostName(row.host), last_seen=row.last_seen,
                                               disabled=bool(row.disabled),
                                               disabled_reason=row.disabled_reason)
                           for row in service_rows),
            read_at=read_at)

    async def record_build(self, dest: Destination, *, succeeded: bool) -> None:
        """Count a failed build on the node, or reset the count after one that
        succeeded (the build-failure weigher's input). Unknown nodes are ignored."""
        values: dict[str, Any] = {"failed_builds": 0} if succeeded else \
            {"failed_builds": _N.failed_builds + 1}
        where = [_N.host == dest.host, _N.node == dest.node]
        if succeeded:
            where.append(_N.failed_builds != 0)  # nothing to write in the common case
        async with self._store.write() as conn:
            await conn.execute(sa.update(t.compute_nodes).where(*where).values(
                **values, generation=_N.generation + 1, updated_at=self._store.now()))

    async def release(self, instance_id: InstanceId) -> None:
        """Free every allocation of the instance; releasing nothing is fine."""
        async with self._store.write() as conn:
            await release_allocations(conn, instance_id, self._store.now())

    async def allocations(self, instance_id: InstanceId) -> list[Allocation]:
        """The instance's allocations, with the node each is on."""
        query = (sa.select(_A.vcpus, _A.memory_mb, _A.disk_gb, _N.host, _N.node)
                 .join(t.compute_nodes, _N.id == _A.compute_node_id)
                 .where(_A.instance_uuid == instance_id).order_by(_A.id))
        async with self._store.read() as conn:
            rows = (await conn.execute(query)).all()
        return [Allocation(instance_id=instance_id, host=HostName(row.host),
                           node=NodeName(row.node),
                           resources=Resources(vcpus=row.vcpus, memory_mb=row.memory_mb,
                                               disk_gb=row.disk_gb))
                for row in rows]

    async def heal_host(self, host: HostName) -> AllocationHealing:
        """Make the allocations on the host's nodes match its instances (see
        :meth:`strato.db.ports.nodes.NodeRepo.heal_host`), in one transaction.

        The instances concerned are locked first (``FOR UPDATE``, in id order, on
        PostgreSQL; SQLite serialises writers anyway), so a delete of one waits for the
        heal and then frees what the heal left. Allocations are then read again and each
        removal is a ``DELETE ... RETURNING``: one a concurrent release got first is not
        given back twice. Node usage changes last, in node id order, like every claim.
        """
        async with self._store.write() as conn:
            nodes = {int(row.id): NodeName(row.node) for row in (await conn.execute(
                sa.select(_N.id, _N.node).where(_N.host == host))).all()}
            if not nodes:
                return AllocationHealing()
            consumers = sa.select(_A.instance_uuid).where(_A.compute_node_id.in_(nodes))
            rows = (await conn.execute(
                sa.select(t.instances)
                .where(sa.or_(sa.and_(_I.host == host, _I.deleted == sa.false()),
                              _I.uuid.in_(consumers)))
                .order_by(_I.uuid).with_for_update())).all()
            instances = {InstanceId(row.uuid): instance_from_row(row) for row in rows}
            held = (await conn.execute(
                sa.select(_A.id, _A.instance_uuid, _A.compute_node_id, _A.vcpus, _A.memory_mb,
                          _A.disk_gb)
                .where(_A.compute_node_id.in_(nodes)).order_by(_A.id))).all()
            heal = _Healing(host, nodes)
            for row in held:
                await heal.check(conn, row, instances.get(InstanceId(row.instance_uuid)))
            for instance in instances.values():
                await heal.ensure(conn, instance, self._store.now())
            await heal.apply(conn, self._store.now())
        return heal.result()


class _Healing:
    """The decisions of one :meth:`SqlNodeRepo.heal_host`, and the usage they change."""

    def __init__(self, host: HostName, nodes: dict[int, NodeName]) -> None:
        self.host = host
        self.nodes = nodes
        self.removed: list[HealedAllocation] = []
        self.created: list[HealedAllocation] = []
        self.skipped: list[str] = []
        self.holding: set[InstanceId] = set()     # instances with an allocation here
        self.delta: dict[int, tuple[Resources, int]] = {}

    def _change(self, node_id: int, amount: Resources, vms: int) -> None:
        total, count = self.delta.get(node_id, (Resources(), 0))
        self.delta[node_id] = (total + amount, count + vms)

    def _allocation(self, instance_id: InstanceId, node_id: int,
                    amount: Resources) -> Allocation:
        return Allocation(instance_id=instance_id, host=self.host, node=self.nodes[node_id],
                          resources=amount)

    async def check(self, conn: AsyncConnection, row: Any, instance: Instance | None) -> None:
        """Remove the allocation ``row`` if its instance should not hold it here."""
        instance_id = InstanceId(row.instance_uuid)
        if instance is None:
            # No record (or one written after the lock was taken: being scheduled now).
            self.skipped.append(f"allocation of unknown instance {instance_id} on "
                                f"{self.nodes[row.compute_node_id]}")
            return
        reason = _removal_reason(instance, self.host)
        if reason is None:
            self.holding.add(instance_id)
            return
        gone = (await conn.execute(sa.delete(t.allocations).where(_A.id == row.id)
                                   .returning(_A.vcpus, _A.memory_mb, _A.disk_gb))).first()
        if gone is None:
            return  # released meanwhile, by whoever got the row first
        amount = Resources(vcpus=gone.vcpus, memory_mb=gone.memory_mb, disk_gb=gone.disk_gb)
        self._change(row.compute_node_id, Resources() - amount, -1)
        self.removed.append(HealedAllocation(
            allocation=self._allocation(instance_id, row.compute_node_id, amount),
            reason=reason))

    async def ensure(self, conn: AsyncConnection, instance: Instance, now: datetime) -> None:
        """Give the instance an allocation here if it runs here and holds none."""
        if (instance.host != self.host or instance.deleted or instance.task_state is not None
                or not holds_resources(instance) or instance.id in self.holding):
            return
        node_id = self._node_of(instance)
        if node_id is None:
            self.skipped.append(f"instance {instance.id} is on node {instance.node}, which "
                                f"host {self.host} does not have")
            return
        need = instance.flavor.resources
        await conn.execute(t.allocations.insert().values(
            instance_uuid=instance.id, compute_node_id=node_id, vcpus=need.vcpus,
            memory_mb=need.memory_mb, disk_gb=need.disk_gb, created_at=now))
        self._change(node_id, need, 1)
        self.holding.add(instance.id)
        self.created.append(HealedAllocation(
            allocation=self._allocation(instance.id, node_id, need),
            reason=f"instance {instance.vm_state} on {self.host} had no allocation"))

    def _node_of(self, instance: Instance) -> int | None:
        by_name = {name: node_id for node_id, name in self.nodes.items()}
        if instance.node in by_name:
            return by_name[instance.node]
        if len(self.nodes) == 1:
            return next(iter(self.nodes))
        return None

    async def apply(self, conn: AsyncConnection, now: datetime) -> None:
        """Change the nodes' usage, in node id order (as claims do)."""
        for node_id in sorted(self.delta):
            amount, vms = self.delta[node_id]
            await conn.execute(sa.update(t.compute_nodes).where(_N.id == node_id).values(
                vcpus_used=_N.vcpus_used + amount.vcpus,
                memory_mb_used=_N.memory_mb_used + amount.memory_mb,
                local_gb_used=_N.local_gb_used + amount.disk_gb,
                running_vms=_N.running_vms + vms,
                generation=_N.generation + 1, updated_at=now))

    def result(self) -> AllocationHealing:
        return AllocationHealing(removed=tuple(self.removed), created=tuple(self.created),
                                 skipped=tuple(self.skipped))


def _removal_reason(instance: Instance, host: HostName) -> str | None:
    """Why the instance's allocation on ``host`` must go, or ``None`` to keep it."""
    if instance.deleted:
        return "instance deleted"
    if instance.task_state is not None:
        return None  # being scheduled, built, moved or deleted: its task decides
    if instance.host != host:
        return f"instance is on host {instance.host}" if instance.host else \
            "instance is on no host"
    if not holds_resources(instance):
        return f"instance in {instance.vm_state} holds nothing (its build failed)"
    return None


async def release_allocations(conn: AsyncConnection, instance_id: InstanceId,
                              now: datetime) -> None:
    """Delete the instance's allocations and give their resources back to the nodes,
    inside the caller's transaction."""
    held = await _delete_allocations(conn, instance_id)
    for node_id in sorted({h.node_id for h in held}):
        await _give_back(conn, node_id, [h for h in held if h.node_id == node_id], now)


async def _node_id(conn: AsyncConnection, dest: Destination) -> int:
    node_id = (await conn.execute(sa.select(_N.id).where(
        _N.host == dest.host, _N.node == dest.node))).scalar()
    if node_id is None:
        raise NotFound(f"compute node {dest.host}/{dest.node} not found")
    return int(node_id)


async def _delete_allocations(conn: AsyncConnection, instance_id: InstanceId) -> list[_Held]:
    # DELETE ... RETURNING: two transactions releasing the same allocation cannot both
    # get it back (the second waits for the row lock, then finds it gone), so usage is
    # never decremented twice.
    rows = (await conn.execute(
        sa.delete(t.allocations).where(_A.instance_uuid == instance_id)
        .returning(_A.compute_node_id, _A.vcpus, _A.memory_mb, _A.disk_gb))).all()
    return [_Held(row.compute_node_id, Resources(vcpus=row.vcpus, memory_mb=row.memory_mb,
                                                 disk_gb=row.disk_gb))
            for row in rows]


async def _move(conn: AsyncConnection, held: list[_Held], target: int,
                need: Resources, now: datetime) -> None:
    # Touch node rows in id order: two claims moving instances between the same two
    # nodes in opposite directions would otherwise deadlock on PostgreSQL.
    for node_id in sorted({h.node_id for h in held} | {target}):
        await _give_back(conn, node_id, [h for h in held if h.node_id == node_id], now)
        if node_id == target and not await _take(conn, target, need, now):
            raise _NoRoom


async def _give_back(conn: AsyncConnection, node_id: int, held: list[_Held],
                     now: datetime) -> None:
    if not held:
        return
    total = sum((h.resources for h in held), Resources())
    await conn.execute(sa.update(t.compute_nodes).where(_N.id == node_id).values(
        vcpus_used=_N.vcpus_used - total.vcpus,
        memory_mb_used=_N.memory_mb_used - total.memory_mb,
        local_gb_used=_N.local_gb_used - total.disk_gb,
        running_vms=_N.running_vms - len(held),
        generation=_N.generation + 1, updated_at=now))


async def _take(conn: AsyncConnection, node_id: int, need: Resources, now: datetime) -> bool:
    """Add ``need`` to the node's usage if it stays within every limit; whether it did."""
    stmt = (sa.update(t.compute_nodes)
            .where(_N.id == node_id, *_fits(need))
            .values(vcpus_used=_N.vcpus_used + need.vcpus,
                    memory_mb_used=_N.memory_mb_used + need.memory_mb,
                    local_gb_used=_N.local_gb_used + need.disk_gb,
                    running_vms=_N.running_vms + 1,
                    generation=_N.generation + 1, updated_at=now))
    return (await conn.execute(stmt)).rowcount == 1


def _fits(need: Resources) -> list[sa.ColumnElement[bool]]:
    # limit = floor(total * ratio) - reserved, as NodeCapacity.limit computes it (floor
    # exists on PostgreSQL; SQLAlchemy's sqlite dialect registers it on each connection).
    # A resource the claim does not ask for is not checked, as in placement: a node
    # over-committed on disk after a smaller report still takes a diskless claim.
    checks = ((need.vcpus, _N.vcpus_used, _N.vcpus, _N.cpu_allocation_ratio,
               _N.reserved_vcpus),
              (need.memory_mb, _N.memory_mb_used, _N.memory_mb, _N.ram_allocation_ratio,
               _N.reserved_memory_mb),
              (need.disk_gb, _N.local_gb_used, _N.local_gb, _N.disk_allocation_ratio,
               _N.reserved_disk_gb))
    return [used + amount <= sa.func.floor(total * ratio) - reserved
            for amount, used, total, ratio, reserved in checks if amount > 0]
