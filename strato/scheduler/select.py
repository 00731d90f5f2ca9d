"""Choosing a host: filters, then weighers, over a snapshot of host states. Pure.

:func:`rank` keeps every host a filter removed, with the filter and its reason, so a
refusal can be explained (:func:`explain`): to users as counts per filter, without host
names ("3 hosts: 2 removed by RamFilter (free RAM 512-1024 MB < 2048 MB requested), 1
removed by ComputeFilter (compute service down ...)"), and to operators host by host.
"""

from __future__ import annotations

import heapq
import random
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from strato.scheduler.filters import CUTS, HostFilter, Rejected
from strato.scheduler.state import HostState, RequestSpec
from strato.scheduler.weighers import weigh

__all__ = ["Explanation", "Ranking", "choose", "explain", "rank"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Ranking:
    """The hosts that passed every filter, best first (the best ``top`` of them), and
    those removed, by filter in the order the filters ran."""

    candidates: tuple[HostState, ...]
    rejected: Mapping[str, Sequence[Rejected]] = field(default_factory=dict)
    filters: tuple[HostFilter, ...] = ()
    considered: int = 0


def rank(hosts: Iterable[HostState], spec: RequestSpec, filters: Sequence[HostFilter],
         multipliers: Mapping[str, float], *, top: int | None = None) -> Ranking:
    """Filter ``hosts`` for ``spec`` and order the survivors best first (only the best
    ``top`` when given: sorting 10,000 hosts to use three is waste).

    A forced host or node (``spec.hints``) limits the hosts to it and skips the policy
    filters; the cuts (retry, resources) always run, the resource fit first.
    """
    forced_host, forced_node = spec.hints.force_host, spec.hints.force_node
    if forced_host or forced_node:
        hosts = [h for h in hosts if (not forced_host or h.host == forced_host)
                 and (not forced_node or h.node == forced_node)]
        filters = ()
    chain = tuple(CUTS) + tuple(f for f in filters if f.applies(spec))
    rejected: dict[str, list[Rejected]] = {f.name: [] for f in chain}
    policy = [f for f in chain if f not in CUTS]
    memory, disk, vcpus = spec.need.memory_mb, spec.need.disk_gb, spec.need.vcpus
    excluded = spec.exclude_hosts
    checks = [(f.name, f.check) for f in policy]
    passed: list[HostState] = []
    considered = 0
    for host in hosts:
        considered += 1
        free = host.free
        if (free.memory_mb < memory or free.disk_gb < disk or free.vcpus < vcpus
                or host.host in excluded):
            _reject(host, spec, CUTS, rejected)  # the slow path names the cut and why
            continue
        for name, check in checks:  # inline: this loop runs for every host
            reason = check(host, spec)
            if reason is not None:
                rejected[name].append(Rejected(host, reason))
                break
        else:
            passed.append(host)
    weights = weigh(passed, spec, multipliers)
    return Ranking(candidates=tuple(passed[i] for i in _best(passed, weights, top)),
                   rejected={name: tuple(found) for name, found in rejected.items() if found},
                   filters=chain, considered=considered)


def _best(passed: Sequence[HostState], weights: Sequence[float], top: int | None) -> list[int]:
    """Indices of the ``top`` heaviest hosts, heaviest first; ties go to the host and
    node first by name, so equal inputs always give equal answers."""
    def order(i: int) -> tuple[float, str, str]:
        return (-weights[i], passed[i].host, passed[i].node)
    indices: Sequence[int] = range(len(passed))
    if top is not None and top <= 0:
        return []
    if top is not None and top < len(passed):
        # The top-th weight, found at C speed; only hosts at least that heavy (ties
        # included) are ordered by name.
        cutoff = heapq.nlargest(top, weights)[-1]
        indices = [i for i, w in enumerate(weights) if w >= cutoff]
    return sorted(indices, key=order)[:top]


def _reject(host: HostState, spec: RequestSpec, chain: Sequence[HostFilter],
            rejected: dict[str, list[Rejected]]) -> bool:
    for check in chain:
        reason = check.check(host, spec)
        if reason is not None:
            rejected[check.name].append(Rejected(host, reason))
            return True
    return False


def choose(candidates: Sequence[HostState], *, subset_size: int, alternates: int,
           rng: random.Random) -> tuple[HostState, tuple[HostState, ...]]:
    """Pick one of the best ``subset_size`` candidates at random (Nova's
    ``host_subset_size``: parallel requests spread instead of all taking the best
    host), then up to ``alternates`` next-best nodes, each on another host."""
    pool = candidates[:max(1, subset_size)]
    chosen = pool[0] if len(pool) == 1 else rng.choice(pool)
    seen = {chosen.host}
    others: list[HostState] = []
    for host in candidates:
        if len(others) == alternates:
            break
        if host.host not in seen:
            seen.add(host.host)
            others.append(host)
    return chosen, tuple(others)


@dataclass(frozen=True, slots=True, kw_only=True)
class Explanation:
    """Why no host fits: ``message`` for everyone (counts, no host names), ``details``
    for operators (host by host)."""

    message: str
    details: str


_DETAIL_LINES = 50


def explain(ranking: Ranking, spec: RequestSpec) -> Explanation:
    """The refusal of a request no host passed."""
    head = "No valid host was found."
    forced = spec.hints.force_host or spec.hints.force_node
    if ranking.considered == 0:
        if forced:
            what = f"host {spec.hints.force_host}" if spec.hints.force_host else \
                f"node {spec.hints.force_node}"
            text = f"{head} The requested {what} is not a compute node."
        else:
            text = f"{head} No compute host has reported in."
        return Explanation(message=text, details=text)
    parts = []
    for check in ranking.filters:
        removed = ranking.rejected.get(check.name, ())
        if removed:
            parts.append(f"{len(removed)} removed by {check.name} "
                         f"({check.summarize(removed, spec)})")
    noun = "host" if ranking.considered == 1 else "hosts"
    message = f"{head} {ranking.considered} {noun}: {', '.join(parts)}."
    lines = [f"{r.host.host} (node {r.host.node}): {check.name}: {r.reason}"
             for check in ranking.filters for r in ranking.rejected.get(check.name, ())]
    more = len(lines) - _DETAIL_LINES
    details = "\n".join([message, *lines[:_DETAIL_LINES]]
                        + ([f"... and {more} more host(s)"] if more > 0 else []))
    return Explanation(message=message, details=details)
