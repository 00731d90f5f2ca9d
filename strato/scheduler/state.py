"""What the scheduler's filters and weighers look at: one host state per compute node,
and one request spec per instance to place. Plain values; the cache that keeps host
states fresh is :mod:`strato.scheduler.hoststate`."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType

from strato.domain.aggregates import DEFAULT_ZONE
from strato.domain.groups import GroupPolicy
from strato.domain.ids import GroupId, HostName, NodeName
from strato.domain.images import Image
from strato.domain.requests import SchedulerHints
from strato.domain.resources import Flavor, NodeCapacity, Resources

__all__ = ["GroupPlacement", "HostState", "RequestSpec"]


@dataclass(frozen=True, slots=True, kw_only=True)
class HostState:
    """A compute node as the scheduler sees it: capacity, usage, service state, zone."""

    capacity: NodeCapacity
    used: Resources = Resources()
    instances: int = 0
    service_up: bool = True
    service_disabled: bool = False
    disabled_reason: str | None = None
    availability_zone: str = DEFAULT_ZONE
    # Builds that failed on this node since its last successful one.
    failed_builds: int = 0
    # The compute_nodes row's generation this state was read at (newer replaces older).
    generation: int = 0
    # What may still be allocated (limit after ratios and reserve, less usage): computed
    # once here, since every filter and weigher of every decision reads it.
    free: Resources = field(init=False)
    # The capacity's names, as plain attributes: read for every host of every decision.
    host: HostName = field(init=False)
    node: NodeName = field(init=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "free", self.capacity.limit - self.used)
        object.__setattr__(self, "host", self.capacity.host)
        object.__setattr__(self, "node", self.capacity.node)

    @property
    def limit(self) -> Resources:
        return self.capacity.limit


_NO_HOSTS: Mapping[HostName, int] = MappingProxyType({})


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupPlacement:
    """A server group as placement needs it: its policy, and how many of its members
    are on (or claimed on) each host, the instance being placed excluded."""

    id: GroupId
    policy: GroupPolicy
    max_server_per_host: int = 1
    hosts: Mapping[HostName, int] = field(default_factory=lambda: _NO_HOSTS)


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestSpec:
    """One instance to place."""

    need: Resources
    flavor: Flavor | None = None
    image: Image | None = None
    hints: SchedulerHints = SchedulerHints()
    # Hosts a build already failed on (the RetryFilter's list).
    exclude_hosts: frozenset[HostName] = frozenset()
    group: GroupPlacement | None = None
