"""The scheduler's filters: small pure functions, each with a name, that say why a host
cannot take an instance (or ``None`` when it can).

Two kinds. The *cuts* always run, first, in this order: RetryFilter (never a host a build
already failed on), then RamFilter, DiskFilter and CoreFilter (the resource fit, with
allocation ratios and reserved amounts — the cheapest test, and the one the claim enforces
anyway). The *policy* filters run after them, those enabled by ``scheduler.enabled_filters``
in its order (Nova's defaults: ComputeFilter, AvailabilityZoneFilter,
ComputeCapabilitiesFilter, ImagePropertiesFilter, ServerGroupAntiAffinityFilter,
ServerGroupAffinityFilter). A forced host (``az:host``, admin only) skips the policy
filters, as in Nova; the cuts still apply.

Every filter also summarises what it removed without naming hosts, for the "no valid
host" message users see: the resource filters give the range of what was free.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from strato.domain.groups import GroupPolicy
from strato.scheduler.capabilities import compute_capabilities_filter, image_properties_filter
from strato.scheduler.state import HostState, RequestSpec

__all__ = ["CUTS", "DEFAULT_FILTERS", "HostFilter", "POLICY_FILTERS", "Rejected",
           "resolve_filters"]

Check = Callable[[HostState, RequestSpec], "str | None"]


@dataclass(frozen=True, slots=True)
class Rejected:
    """One host a filter removed, and its reason."""

    host: HostState
    reason: str


Summary = Callable[[Sequence[Rejected], RequestSpec], str]


def distinct_reasons(rejected: Sequence[Rejected], spec: RequestSpec) -> str:
    """The different reasons given, most common first (at most three)."""
    del spec
    counts = Counter(r.reason for r in rejected)
    ordered = sorted(counts, key=lambda reason: (-counts[reason], reason))
    more = f"; and {len(ordered) - 3} other reason(s)" if len(ordered) > 3 else ""
    return "; ".join(ordered[:3]) + more


def _always(spec: RequestSpec) -> bool:
    del spec
    return True


@dataclass(frozen=True, slots=True)
class HostFilter:
    name: str
    check: Check
    summarize: Summary = distinct_reasons
    # False when the filter would pass every host for this request (no zone asked, no
    # group...): it is then not run at all, which matters at 10,000 hosts.
    applies: Callable[[RequestSpec], bool] = _always


# --- the cuts ------------------------------------------------------------------------

def retry_filter(host: HostState, spec: RequestSpec) -> str | None:
    """A rescheduled build never goes back to a host where it already failed."""
    if host.host in spec.exclude_hosts:
        return "a build of this instance already failed here"
    return None


def ram_filter(host: HostState, spec: RequestSpec) -> str | None:
    need, free = spec.need.memory_mb, host.free.memory_mb
    if need > free:
        return f"free RAM {free} MB < {need} MB requested"
    return None


def disk_filter(host: HostState, spec: RequestSpec) -> str | None:
    need, free = spec.need.disk_gb, host.free.disk_gb
    if need > free:
        return f"free disk {free} GB < {need} GB requested"
    return None


def core_filter(host: HostState, spec: RequestSpec) -> str | None:
    need, free = spec.need.vcpus, host.free.vcpus
    if need > free:
        return f"free vCPUs {free} < {need} requested"
    return None


def _free_range(label: str, unit: str, pick: Callable[[HostState], int],
                need: Callable[[RequestSpec], int]) -> Summary:
    def summarize(rejected: Sequence[Rejected], spec: RequestSpec) -> str:
        values = [pick(r.host) for r in rejected]
        low, high = min(values), max(values)
        span = f"{low}" if low == high else f"{low}-{high}"
        return f"free {label} {span}{unit} < {need(spec)}{unit} requested"
    return summarize


CUTS: tuple[HostFilter, ...] = (
    HostFilter("RetryFilter", retry_filter),
    HostFilter("RamFilter", ram_filter,
               _free_range("RAM", " MB", lambda h: h.free.memory_mb, lambda s: s.need.memory_mb)),
    HostFilter("DiskFilter", disk_filter,
               _free_range("disk", " GB", lambda h: h.free.disk_gb, lambda s: s.need.disk_gb)),
    HostFilter("CoreFilter", core_filter,
               _free_range("vCPUs", "", lambda h: h.free.vcpus, lambda s: s.need.vcpus)),
)


# --- the policy filters --------------------------------------------------------------

def compute_filter(host: HostState, spec: RequestSpec) -> str | None:
    """The node's compute service must be up and enabled."""
    del spec
    if host.service_disabled:
        return f"compute service disabled ({host.disabled_reason or 'no reason given'})"
    if not host.service_up:
        return "compute service down (no recent heartbeat)"
    return None


def availability_zone_filter(host: HostState, spec: RequestSpec) -> str | None:
    """The host must be in the requested zone (hosts outside any zone aggregate are in
    the default zone)."""
    zone = spec.hints.availability_zone
    if zone and host.availability_zone != zone:
        return f"in availability zone {host.availability_zone!r}, not {zone!r}"
    return None


def server_group_affinity_filter(host: HostState, spec: RequestSpec) -> str | None:
    """An affinity group's members all go where its first member went."""
    group = spec.group
    if group is None or group.policy is not GroupPolicy.AFFINITY or not group.hosts:
        return None
    if host.host not in group.hosts:
        where = ", ".join(sorted(group.hosts))
        return f"affinity group's members are on {where}"
    return None


def server_group_anti_affinity_filter(host: HostState, spec: RequestSpec) -> str | None:
    """An anti-affinity group puts at most ``max_server_per_host`` members per host."""
    group = spec.group
    if group is None or group.policy is not GroupPolicy.ANTI_AFFINITY:
        return None
    here = group.hosts.get(host.host, 0)
    if here >= group.max_server_per_host:
        return (f"anti-affinity group has {here} member(s) here already "
                f"(at most {group.max_server_per_host})")
    return None


def _anonymous_groups(rejected: Sequence[Rejected], spec: RequestSpec) -> str:
    # The per-host reasons name the hosts members are on; users only learn the rule.
    del rejected
    group = spec.group
    if group is not None and group.policy is GroupPolicy.AFFINITY:
        return "not the host of the affinity group's members"
    return "a member of the anti-affinity group is there already"


def _group(policy: GroupPolicy) -> Callable[[RequestSpec], bool]:
    return lambda spec: spec.group is not None and spec.group.policy is policy


def _capability_specs(spec: RequestSpec) -> bool:
    # Unscoped keys and the capabilities: scope are the filter's; others are not.
    specs = spec.flavor.extra_specs if spec.flavor is not None else {}
    return any(":" not in key or key.startswith("capabilities:") for key in specs)


_IMAGE_KEYS = frozenset({"hw_architecture", "architecture", "img_hv_type", "hypervisor_type",
                         "hw_vm_mode", "vm_mode", "img_hv_requested_version"})


def _image_properties(spec: RequestSpec) -> bool:
    return spec.image is not None and not _IMAGE_KEYS.isdisjoint(spec.image.properties)


POLICY_FILTERS: dict[str, HostFilter] = {f.name: f for f in (
    HostFilter("ComputeFilter", compute_filter),
    HostFilter("AvailabilityZoneFilter", availability_zone_filter,
               applies=lambda spec: bool(spec.hints.availability_zone)),
    HostFilter("ComputeCapabilitiesFilter", compute_capabilities_filter,
               applies=_capability_specs),
    HostFilter("ImagePropertiesFilter", image_properties_filter, applies=_image_properties),
    HostFilter("ServerGroupAntiAffinityFilter", server_group_anti_affinity_filter,
               _anonymous_groups, applies=_group(GroupPolicy.ANTI_AFFINITY)),
    HostFilter("ServerGroupAffinityFilter", server_group_affinity_filter, _anonymous_groups,
               applies=_group(GroupPolicy.AFFINITY)),
)}

DEFAULT_FILTERS: tuple[str, ...] = tuple(POLICY_FILTERS)


def resolve_filters(names: Sequence[str]) -> tuple[HostFilter, ...]:
    """The policy filters called ``names``, in that order; ``ValueError`` naming any
    unknown one and the known ones."""
    unknown = [n for n in names if n not in POLICY_FILTERS]
    if unknown:
        cuts = {f.name for f in CUTS}
        always = [n for n in unknown if n in cuts]
        if always:
            raise ValueError(f"{', '.join(always)} always run{'s' if len(always) == 1 else ''}"
                             f" and cannot be listed in scheduler.enabled_filters")
        raise ValueError(f"unknown scheduler filter(s) {', '.join(unknown)}; known: "
                         f"{', '.join(POLICY_FILTERS)}")
    return tuple(POLICY_FILTERS[n] for n in names)
