"""``PlacementRepo`` on SQL: what the scheduler and the compute's group check read about
server groups, beyond plain node rows.

Where a member is: the node of its allocation (written by the scheduler's claim, before
the conductor records the host on the instance) or else its recorded host. A member
whose build failed (ERROR, never launched) is nowhere: it holds nothing and does not
block anti-affinity.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa

from strato.db import tables as t
from strato.db._engine import Store
from strato.db._instances import explain_miss
from strato.db.ports import GroupMembers
from strato.domain.errors import NotFound
from strato.domain.groups import GroupPolicy, ServerGroup
from strato.domain.ids import GroupId, HostName, InstanceId, ProjectId, UserId
from strato.domain.instances import TaskState, VmState

__all__ = ["SqlPlacementRepo"]

_G = t.server_groups.c
_M = t.server_group_members.c
_I = t.instances.c
_A = t.allocations.c
_N = t.compute_nodes.c


def _placed() -> sa.ColumnElement[bool]:
    """Live instances that hold (or are building towards) resources: the SQL form of
    :func:`strato.domain.instances.holds_resources`."""
    return sa.and_(_I.deleted == sa.false(),
                   sa.not_(sa.and_(_I.vm_state == VmState.ERROR.value,
                                   _I.launched_at.is_(None))))


class SqlPlacementRepo:
    """See :class:`strato.db.ports.placement.PlacementRepo`."""

    def __init__(self, store: Store) -> None:
        self._store = store

    async def group_members(self, group_id: GroupId) -> GroupMembers:
        """The group, and the host of each member that is somewhere."""
        async with self._store.read() as conn:
            group = (await conn.execute(sa.select(t.server_groups)
                                        .where(_G.uuid == group_id))).first()
            if group is None:
                raise NotFound(f"Instance group {group_id} could not be found.")
            members = sa.select(_M.instance_uuid).where(_M.group_id == group.id)
            rows = (await conn.execute(
                sa.select(_I.uuid, _I.host).where(_I.uuid.in_(members), _placed())
                .order_by(_I.uuid))).all()
            claimed = dict((await conn.execute(
                sa.select(_A.instance_uuid, _N.host)
                .join(t.compute_nodes, _N.id == _A.compute_node_id)
                .where(_A.instance_uuid.in_(members)))).all())
        hosts: dict[InstanceId, HostName] = {}
        for row in rows:
            host = claimed.get(row.uuid) or row.host
            if host:
                hosts[InstanceId(row.uuid)] = HostName(host)
        return GroupMembers(
            group=ServerGroup(id=GroupId(group.uuid), name=group.name,
                              project_id=ProjectId(group.project_id),
                              user_id=UserId(group.user_id), policy=GroupPolicy(group.policy),
                              rules=dict(group.rules or {}),
                              members=tuple(InstanceId(r.uuid) for r in rows)),
            hosts=hosts)

    async def start_build(self, instance_id: InstanceId, host: HostName) -> str | None:
        """Check the instance's hard group policies against the members already building
        or built, and if they hold, move it from scheduling to networking — one
        transaction, the groups' rows locked, so of two racing members only one passes.
        Answers the violated rule (nothing changed) or None. ``InvalidState`` or
        ``NotFound`` when the instance is no longer scheduling (deleted meanwhile)."""
        async with self._store.write() as conn:
            groups = (await conn.execute(
                sa.select(t.server_groups)
                .where(_G.id.in_(sa.select(_M.group_id)
                                 .where(_M.instance_uuid == instance_id)))
                .order_by(_G.id).with_for_update())).all()
            for group in groups:
                policy = GroupPolicy(group.policy)
                if not policy.is_hard:
                    continue
                # Members past the scheduling step: admitted here or elsewhere already.
                others = (await conn.execute(
                    sa.select(_I.host)
                    .where(_I.uuid.in_(sa.select(_M.instance_uuid)
                                       .where(_M.group_id == group.id)),
                           _I.uuid != instance_id, _I.host.is_not(None), _placed(),
                           sa.or_(_I.task_state.is_(None),
                                  _I.task_state != TaskState.SCHEDULING.value)))).scalars().all()
                reason = _violation(policy, dict(group.rules or {}), group.uuid, host, others)
                if reason is not None:
                    return reason
            moved = await conn.execute(
                sa.update(t.instances)
                .where(_I.uuid == instance_id, _I.deleted == sa.false(),
                       _I.task_state == TaskState.SCHEDULING.value)
                .values(task_state=TaskState.NETWORKING.value, updated_at=self._store.now()))
            if moved.rowcount != 1:
                await explain_miss(conn, instance_id, (TaskState.SCHEDULING,))
        return None



def _violation(policy: GroupPolicy, rules: dict[str, int], group: str, host: HostName,
               others: Sequence[str]) -> str | None:
    if policy is GroupPolicy.ANTI_AFFINITY:
        limit = int(rules.get("max_server_per_host", 1))
        here = sum(1 for h in others if h == host)
        # No host names: the text reaches the user's fault (the event names the host).
        if here >= limit:
            return (f"anti-affinity group {group} already has {here} member(s) on this "
                    f"host (at most {limit})")
    elif policy is GroupPolicy.AFFINITY:
        if any(h != host for h in others):
            return f"affinity group {group} has members on another host"
    return None
