"""Choosing hosts: filters, then weighers. Pure functions over a snapshot of the nodes.

Each filter is ``(node, need, spec) -> reason | None``; a node survives when every filter
returns None. Rejections are kept, filter name and reason, so "no valid host" can say
which filter removed which host and why (the full filter/weigher set is its own issue).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from strato.domain.ids import HostName
from strato.domain.requests import SchedulerHints
from strato.domain.resources import NodeUsage, Resources, fit_reasons

__all__ = ["DEFAULT_ZONE", "FILTERS", "Rejection", "Ranking", "RequestSpec", "explain",
           "rank_nodes"]

DEFAULT_ZONE = "nova"


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSpec:
    """What the filters look at for one instance."""

    need: Resources
    hints: SchedulerHints = SchedulerHints()
    exclude_hosts: frozenset[HostName] = frozenset()


@dataclass(frozen=True, slots=True, kw_only=True)
class Rejection:
    host: HostName
    node: str
    filter: str
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class Ranking:
    """Nodes that passed every filter, best first, and why the others did not."""

    candidates: tuple[NodeUsage, ...]
    rejections: tuple[Rejection, ...] = field(default_factory=tuple)


Filter = Callable[[NodeUsage, RequestSpec], str | None]


def compute_filter(node: NodeUsage, spec: RequestSpec) -> str | None:
    """The node's compute service must be up and enabled."""
    del spec
    if node.service_disabled:
        return f"compute service disabled ({node.disabled_reason or 'no reason given'})"
    if not node.service_up:
        return "compute service is down (no recent heartbeat)"
    return None


def retry_filter(node: NodeUsage, spec: RequestSpec) -> str | None:
    """A rescheduled build never goes back to a host where it already failed."""
    if node.host in spec.exclude_hosts:
        return "build already failed on this host"
    return None


def availability_zone_filter(node: NodeUsage, spec: RequestSpec) -> str | None:
    """Every node is in the default zone until host aggregates exist."""
    del node
    zone = spec.hints.availability_zone
    if zone and zone != DEFAULT_ZONE:
        return f"not in availability zone {zone!r}"
    return None


def force_host_filter(node: NodeUsage, spec: RequestSpec) -> str | None:
    forced = spec.hints.force_host
    if forced and node.host != forced:
        return f"not the requested host {forced}"
    return None


def resource_filter(node: NodeUsage, spec: RequestSpec) -> str | None:
    """RAM, disk and vCPUs must fit within the allocation-ratio limits."""
    reasons = fit_reasons(spec.need, node)
    return "; ".join(reasons) if reasons else None


FILTERS: tuple[tuple[str, Filter], ...] = (
    ("ComputeFilter", compute_filter),
    ("RetryFilter", retry_filter),
    ("AvailabilityZoneFilter", availability_zone_filter),
    ("ForceHostFilter", force_host_filter),
    ("ResourceFilter", resource_filter),
)


def ram_weight(node: NodeUsage) -> float:
    """Spread: more free RAM is better (Nova's RAMWeigher with a positive multiplier)."""
    return float(node.free.memory_mb)


def rank_nodes(nodes: Sequence[NodeUsage], spec: RequestSpec) -> Ranking:
    """Filter ``nodes`` for ``spec`` and order the survivors best first."""
    passed: list[NodeUsage] = []
    rejected: list[Rejection] = []
    for node in nodes:
        rejection = _first_rejection(node, spec)
        if rejection is None:
            passed.append(node)
        else:
            rejected.append(rejection)
    # Ties broken by name, so the same inputs always give the same order.
    passed.sort(key=lambda n: (-ram_weight(n), n.host, n.node))
    return Ranking(candidates=tuple(passed), rejections=tuple(rejected))


def _first_rejection(node: NodeUsage, spec: RequestSpec) -> Rejection | None:
    for name, check in FILTERS:
        reason = check(node, spec)
        if reason is not None:
            return Rejection(host=node.host, node=node.node, filter=name, reason=reason)
    return None


def explain(rejections: Sequence[Rejection], considered: int) -> str:
    """The message of a NoValidHost: every host, the filter that removed it, and why."""
    head = f"No valid host was found. {considered} host(s) considered"
    if considered == 0:
        return f"{head}: no compute host has reported in."
    if not rejections:
        return f"{head}; every candidate was claimed by concurrent requests."
    detail = "; ".join(f"{r.node} removed by {r.filter}: {r.reason}" for r in rejections[:20])
    more = f" (and {len(rejections) - 20} more)" if len(rejections) > 20 else ""
    return f"{head}: {detail}{more}."
