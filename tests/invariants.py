"""The books must balance: the check every service test's cloud runs at teardown.

Once nothing is in flight, every node's usage is the sum of its allocations, every
allocation belongs to a live instance on that node's host that should hold one, and
every instance that should hold resources on a host holds exactly one allocation there.
(Ports join these books when networks arrive.)
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Mapping

from strato.compute.deps import ComputeDeps
from strato.db.ports import Database, InstanceQuery
from strato.domain.instances import Instance, holds_resources
from strato.domain.resources import Resources

__all__ = ["assert_books_balance"]


async def _settled(db: Database, timeout: float) -> list[Instance]:
    """The instances, once none has a task in progress (or the timeout passed)."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        instances = await db.instances.list(InstanceQuery(include_deleted=True))
        busy = [i for i in instances if i.task_state is not None and not i.deleted]
        if not busy or loop.time() > deadline:
            return instances
        await asyncio.sleep(0.05)


async def assert_books_balance(db: Database, *, timeout: float = 15.0,
                               computes: Mapping[str, ComputeDeps] | None = None) -> None:
    """``computes``: the running computes, whose own trackers must claim exactly what
    the database allocates on their hosts (plus each driver's overhead)."""
    instances = await _settled(db, timeout)
    problems: list[str] = []
    allocations = {i.id: await db.nodes.allocations(i.id) for i in instances}
    per_node: dict[tuple[str, str], Resources] = {}
    count: Counter[tuple[str, str]] = Counter()
    for instance in instances:
        held = allocations[instance.id]
        for alloc in held:
            key = (alloc.host, alloc.node)
            per_node[key] = per_node.get(key, Resources()) + alloc.resources
            count[key] += 1
        settled = instance.task_state is None
        if settled and held and not holds_resources(instance):
            problems.append(f"{instance.id} ({instance.vm_state}) holds {len(held)} "
                            "allocation(s) but should hold none")
        if settled and holds_resources(instance) and instance.host is not None:
            on_host = [a for a in held if a.host == instance.host]
            if len(held) != 1 or len(on_host) != 1:
                problems.append(f"{instance.id} ({instance.vm_state} on {instance.host}) "
                                f"holds {[(a.host, a.node) for a in held]}, not one "
                                "allocation on its host")
    for usage in await db.nodes.usages():
        key = (usage.host, usage.node)
        if usage.used != per_node.get(key, Resources()) or usage.instances != count[key]:
            problems.append(f"node {key}: usage {usage.used} x{usage.instances} but "
                            f"allocations add up to {per_node.get(key, Resources())} "
                            f"x{count[key]}")
    by_id = {i.id: i for i in instances}
    for host, deps in (computes or {}).items():
        tracked = deps.tracker.claims()
        allocated = {iid: held for iid, held in allocations.items()
                     if any(a.host == host for a in held)}
        for iid in sorted(set(tracked) | set(allocated)):
            held = [a for a in allocated.get(iid, []) if a.host == host]
            expected = (None if not held else
                        (held[0].node, held[0].resources
                         + deps.driver.instance_overhead(by_id[iid].flavor)))
            if tracked.get(iid) != expected:
                problems.append(f"compute {host} tracks {iid} as {tracked.get(iid)}, the "
                                f"database allocates {expected}")
    assert not problems, "the books do not balance:\n  " + "\n  ".join(problems)
