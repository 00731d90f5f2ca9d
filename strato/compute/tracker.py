"""The resource tracker: the compute's own account of what its nodes hold.

The scheduler's claim is made against the database; this one is made against the
host's real capacity as the driver reports it, as the seeds' ``instance_claim`` does, so
a host never starts more than it can hold even if the database view was stale.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

from strato.domain.errors import RescheduleBuild
from strato.domain.ids import InstanceId, NodeName
from strato.domain.resources import NodeCapacity, NodeUsage, Resources, fit_reasons

__all__ = ["ResourceTracker", "TrackerStatistics"]


@dataclass(frozen=True, slots=True)
class TrackerStatistics:
    nodes: int
    instances: int
    used: Resources


@dataclass
class ResourceTracker:
    capacities: dict[NodeName, NodeCapacity] = field(default_factory=dict)
    _claims: dict[InstanceId, tuple[NodeName, Resources]] = field(default_factory=dict)

    def update_capacities(self, capacities: Sequence[NodeCapacity]) -> None:
        self.capacities = {c.node: c for c in capacities}

    def usage(self, node: NodeName) -> NodeUsage:
        used = sum((r for n, r in self._claims.values() if n == node), Resources())
        count = sum(1 for n, _ in self._claims.values() if n == node)
        return NodeUsage(capacity=self.capacities[node], used=used, instances=count)

    @contextlib.contextmanager
    def claim(self, instance_id: InstanceId, node: NodeName, need: Resources) -> Iterator[None]:
        """Hold ``need`` on ``node`` for the block; released again if the block raises.

        Raises ``RescheduleBuild`` (another host may have room) when it does not fit.
        """
        if node not in self.capacities:
            raise RescheduleBuild(f"node {node} is not managed by this host")
        reasons = fit_reasons(need, self.usage(node))
        if reasons:
            raise RescheduleBuild(f"insufficient resources on {node}: " + "; ".join(reasons))
        self._claims[instance_id] = (node, need)
        try:
            yield
        except BaseException:
            self.release(instance_id)
            raise

    def release(self, instance_id: InstanceId) -> None:
        self._claims.pop(instance_id, None)

    def statistics(self) -> TrackerStatistics:
        used = sum((r for _, r in self._claims.values()), Resources())
        return TrackerStatistics(nodes=len(self.capacities), instances=len(self._claims),
                                 used=used)
