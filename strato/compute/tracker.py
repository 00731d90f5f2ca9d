"""The resource tracker: the compute's own account of what its nodes hold.

The scheduler's claim is made against the database; this one is made against the
host's real capacity as the driver reports it, as the seeds' ``instance_claim`` does, so
a host never starts more than it can hold even if the database view was stale.

The account is rebuilt from the instances on the host at start-up and by every resource
audit (the seeds' ``update_available_resource``): :meth:`ResourceTracker.rebuild` takes
the audit's view, read from the database after :meth:`ResourceTracker.mark`, but keeps
what this process itself claimed or released since, which is newer than that view.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field

from strato.domain.errors import RescheduleBuild
from strato.domain.ids import InstanceId, NodeName
from strato.domain.resources import NodeCapacity, NodeUsage, Resources, fit_reasons

__all__ = ["ResourceTracker", "TrackerDrift", "TrackerStatistics"]


@dataclass(frozen=True, slots=True)
class TrackerStatistics:
    nodes: int
    instances: int
    used: Resources


@dataclass(frozen=True, slots=True)
class TrackerDrift:
    """What a rebuild changed: instances it started and stopped counting."""

    added: tuple[InstanceId, ...] = ()
    dropped: tuple[InstanceId, ...] = ()


@dataclass
class ResourceTracker:
    capacities: dict[NodeName, NodeCapacity] = field(default_factory=dict)
    _claims: dict[InstanceId, tuple[NodeName, Resources]] = field(default_factory=dict)
    # Every claim or release bumps the counter and stamps the instance with it, so a
    # rebuild knows which instances changed after its view of the database was read.
    _changes: int = 0
    _changed_at: dict[InstanceId, int] = field(default_factory=dict)

    def update_capacities(self, capacities: Sequence[NodeCapacity]) -> None:
        self.capacities = {c.node: c for c in capacities}

    def usage(self, node: NodeName, *, excluding: InstanceId | None = None) -> NodeUsage:
        held = [r for i, (n, r) in self._claims.items() if n == node and i != excluding]
        return NodeUsage(capacity=self.capacities[node], used=sum(held, Resources()),
                         instances=len(held))

    @contextlib.contextmanager
    def claim(self, instance_id: InstanceId, node: NodeName, need: Resources) -> Iterator[None]:
        """Hold ``need`` on ``node`` for the block; released again if the block raises.

        An instance the tracker already counts (an audit saw it on this host before its
        build began) is checked without its own old claim. Raises ``RescheduleBuild``
        (another host may have room) when it does not fit.
        """
        if node not in self.capacities:
            raise RescheduleBuild(f"node {node} is not managed by this host")
        reasons = fit_reasons(need, self.usage(node, excluding=instance_id))
        if reasons:
            raise RescheduleBuild(f"insufficient resources on {node}: " + "; ".join(reasons))
        self.track(instance_id, node, need)
        try:
            yield
        except BaseException:
            self.release(instance_id)
            raise

    def track(self, instance_id: InstanceId, node: NodeName, need: Resources) -> None:
        """Count ``need`` on ``node`` for an instance that runs there already (no fit
        check: it uses the resources whether or not they fit)."""
        self._claims[instance_id] = (node, need)
        self._stamp(instance_id)

    def release(self, instance_id: InstanceId) -> None:
        self._claims.pop(instance_id, None)
        self._stamp(instance_id)

    def holds(self, instance_id: InstanceId) -> bool:
        return instance_id in self._claims

    def claims(self) -> dict[InstanceId, tuple[NodeName, Resources]]:
        """What the tracker counts, instance by instance (a copy)."""
        return dict(self._claims)

    def mark(self) -> int:
        """A point in the tracker's history; pass it to :meth:`rebuild`."""
        return self._changes

    def rebuild(self, held: Mapping[InstanceId, tuple[NodeName, Resources]], *,
                since: int) -> TrackerDrift:
        """Count exactly ``held`` (what the instances on this host hold, read after
        ``since``), except for instances claimed or released after ``since``: for those
        the tracker's own record is newer than the view and stays as it is."""
        fresh = {iid for iid, at in self._changed_at.items() if at > since}
        claims = {iid: claim for iid, claim in held.items() if iid not in fresh}
        claims.update({iid: self._claims[iid] for iid in fresh if iid in self._claims})
        drift = TrackerDrift(
            added=tuple(sorted(set(claims) - set(self._claims))),
            dropped=tuple(sorted(set(self._claims) - set(claims))))
        self._claims = claims
        # Stamps at or before ``since`` can no longer matter to a later rebuild, whose
        # mark is at least this one.
        self._changed_at = {iid: at for iid, at in self._changed_at.items() if at > since}
        return drift

    def _stamp(self, instance_id: InstanceId) -> None:
        self._changes += 1
        self._changed_at[instance_id] = self._changes

    def statistics(self) -> TrackerStatistics:
        used = sum((r for _, r in self._claims.values()), Resources())
        return TrackerStatistics(nodes=len(self.capacities), instances=len(self._claims),
                                 used=used)
