"""Resources: flavors, what an instance needs, what a node has, and claims against it.

Pure arithmetic, used by the scheduler (to choose) and by the compute's resource tracker
(to check again against the host's real capacity, as the seeds' ``Claim`` does).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from strato.domain.ids import FlavorId, HostName, InstanceId, NodeName

__all__ = ["Flavor", "NodeCapacity", "NodeUsage", "Resources", "fit_reasons"]


@dataclass(frozen=True, slots=True, kw_only=True)
class Resources:
    """An amount of the three schedulable resources."""

    vcpus: int = 0
    memory_mb: int = 0
    disk_gb: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(vcpus=self.vcpus + other.vcpus,
                         memory_mb=self.memory_mb + other.memory_mb,
                         disk_gb=self.disk_gb + other.disk_gb)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(vcpus=self.vcpus - other.vcpus,
                         memory_mb=self.memory_mb - other.memory_mb,
                         disk_gb=self.disk_gb - other.disk_gb)


@dataclass(frozen=True, slots=True, kw_only=True)
class Flavor:
    """A flavor, and the snapshot of it an instance keeps (later flavor edits do not move
    existing instances)."""

    id: FlavorId
    name: str
    vcpus: int
    memory_mb: int
    root_gb: int
    ephemeral_gb: int = 0
    swap_mb: int = 0
    is_public: bool = True
    disabled: bool = False
    rxtx_factor: float = 1.0
    description: str | None = None
    extra_specs: dict[str, str] = field(default_factory=dict)

    @property
    def resources(self) -> Resources:
        # Swap is disk too; round MB up to whole GB as Nova's disk accounting does.
        swap_gb = (self.swap_mb + 1023) // 1024
        return Resources(vcpus=self.vcpus, memory_mb=self.memory_mb,
                         disk_gb=self.root_gb + self.ephemeral_gb + swap_gb)


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeCapacity:
    """What a hypervisor node has in total, as its driver reports it."""

    host: HostName
    node: NodeName
    total: Resources
    cpu_allocation_ratio: float = 16.0
    ram_allocation_ratio: float = 1.5
    disk_allocation_ratio: float = 1.0
    reserved: Resources = Resources(memory_mb=0)
    # What os-hypervisors shows: "QEMU" for libvirt (KVM or TCG alike, as Nova), "fake"
    # for the fake driver; cpu_info is a JSON text (arch, model, and how guests run).
    hypervisor_type: str = "fake"
    hypervisor_version: int = 1000
    cpu_info: str = ""
    # The guest types the node runs, as (architecture, hypervisor type, vm mode) triples
    # (Nova's ``supported_instances``), for the scheduler's ImagePropertiesFilter.
    supported_instances: tuple[tuple[str, str, str], ...] = ()

    @property
    def limit(self) -> Resources:
        """The most that may be allocated, after ratios and the reserved amount."""
        return Resources(
            vcpus=int(self.total.vcpus * self.cpu_allocation_ratio) - self.reserved.vcpus,
            memory_mb=int(self.total.memory_mb * self.ram_allocation_ratio)
            - self.reserved.memory_mb,
            disk_gb=int(self.total.disk_gb * self.disk_allocation_ratio)
            - self.reserved.disk_gb,
        )


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeUsage:
    """A node's capacity together with what is allocated on it now."""

    capacity: NodeCapacity
    used: Resources
    instances: int = 0
    service_up: bool = True
    service_disabled: bool = False
    disabled_reason: str | None = None

    @property
    def host(self) -> HostName:
        return self.capacity.host

    @property
    def node(self) -> NodeName:
        return self.capacity.node

    @property
    def free(self) -> Resources:
        return self.capacity.limit - self.used


def fit_reasons(need: Resources, usage: NodeUsage) -> list[str]:
    """Why ``need`` does not fit on the node (empty when it fits).

    Each reason names the resource and both numbers, so "no valid host" can say exactly
    which host lacked what.
    """
    free = usage.free
    reasons = []
    if need.memory_mb > free.memory_mb:
        reasons.append(f"RAM: needs {need.memory_mb} MB, {free.memory_mb} MB free")
    if need.disk_gb > free.disk_gb:
        reasons.append(f"disk: needs {need.disk_gb} GB, {free.disk_gb} GB free")
    if need.vcpus > free.vcpus:
        reasons.append(f"vCPU: needs {need.vcpus}, {free.vcpus} free")
    return reasons


@dataclass(frozen=True, slots=True, kw_only=True)
class Allocation:
    """Resources held for one instance on one node."""

    instance_id: InstanceId
    host: HostName
    node: NodeName
    resources: Resources


__all__ += ["Allocation"]
