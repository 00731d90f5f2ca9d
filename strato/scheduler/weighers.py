"""The scheduler's weighers: each scores every host that passed the filters; scores are
normalised to 0..1 across those hosts (Nova's ``normalize``: all equal gives all 0),
multiplied by the weigher's multiplier and summed. Highest total wins.

- RAMWeigher, DiskWeigher, CPUWeigher: free RAM, disk, vCPUs. A positive multiplier
  spreads instances over hosts (the default); a negative one stacks them.
- ServerGroupSoftAffinityWeigher: members of a soft-affinity group already on the host.
- ServerGroupSoftAntiAffinityWeigher: minus the members of a soft-anti-affinity group.
- BuildFailureWeigher: minus the builds that failed on the host since its last success,
  with a multiplier large enough (1,000,000) to put such hosts last.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

from strato.domain.groups import GroupPolicy
from strato.scheduler.state import HostState, RequestSpec

__all__ = ["DEFAULT_MULTIPLIERS", "Weigher", "WEIGHERS", "weigh"]


@dataclass(frozen=True, slots=True)
class Weigher:
    name: str
    # Every host's score, in order (one comprehension per weigher: this runs over every
    # host that passed the filters, 10,000 of them at scale).
    scores: Callable[[Sequence[HostState], RequestSpec], list[float]]
    # Whether the weigher has anything to say about this request at all.
    applies: Callable[[RequestSpec], bool] = lambda spec: True


def _soft(policy: GroupPolicy) -> Callable[[RequestSpec], bool]:
    return lambda spec: spec.group is not None and spec.group.policy is policy


def _members(hosts: Sequence[HostState], spec: RequestSpec) -> list[float]:
    """Members of the request's group on each host."""
    here = spec.group.hosts if spec.group is not None else {}
    return [float(here.get(h.host, 0)) for h in hosts]


WEIGHERS: tuple[Weigher, ...] = (
    Weigher("RAMWeigher", lambda hosts, s: [float(h.free.memory_mb) for h in hosts]),
    Weigher("DiskWeigher", lambda hosts, s: [float(h.free.disk_gb) for h in hosts]),
    Weigher("CPUWeigher", lambda hosts, s: [float(h.free.vcpus) for h in hosts]),
    Weigher("ServerGroupSoftAffinityWeigher", _members, _soft(GroupPolicy.SOFT_AFFINITY)),
    Weigher("ServerGroupSoftAntiAffinityWeigher",
            lambda hosts, s: [-n for n in _members(hosts, s)],
            _soft(GroupPolicy.SOFT_ANTI_AFFINITY)),
    Weigher("BuildFailureWeigher", lambda hosts, s: [-float(h.failed_builds) for h in hosts]),
)

DEFAULT_MULTIPLIERS: Mapping[str, float] = {
    "RAMWeigher": 1.0, "DiskWeigher": 1.0, "CPUWeigher": 1.0,
    "ServerGroupSoftAffinityWeigher": 1.0, "ServerGroupSoftAntiAffinityWeigher": 1.0,
    "BuildFailureWeigher": 1_000_000.0,
}


def weigh(hosts: Sequence[HostState], spec: RequestSpec,
          multipliers: Mapping[str, float]) -> list[float]:
    """The total weight of each host, in ``hosts`` order."""
    totals = [0.0] * len(hosts)
    for weigher in WEIGHERS:
        multiplier = multipliers.get(weigher.name, 0.0)
        if not multiplier or not weigher.applies(spec):
            continue
        scores = weigher.scores(hosts, spec)
        low, high = min(scores, default=0.0), max(scores, default=0.0)
        if high == low:
            continue  # normalised, every host scores 0: nothing to add
        scale = multiplier / (high - low)
        totals = [t + (score - low) * scale for t, score in zip(totals, scores, strict=True)]
    return totals
