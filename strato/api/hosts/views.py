"""Compute services and hypervisor nodes -> Nova 2.1 ``os-services`` and
``os-hypervisors`` JSON."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from strato.api.formats import iso_micro
from strato.db.ports import ServiceRecord
from strato.domain.aggregates import DEFAULT_ZONE, INTERNAL_ZONE
from strato.domain.ids import HostName
from strato.domain.resources import NodeUsage

__all__ = ["hypervisor_detail", "hypervisor_summary", "is_compute_service", "service_view"]

def is_compute_service(record: ServiceRecord) -> bool:
    """Whether the service record is a compute service (whatever its binary is named)."""
    return record.topic == "compute" or record.binary.endswith("compute")


def service_view(record: ServiceRecord, zones: Mapping[HostName, str]) -> dict[str, Any]:
    """One service; a compute lives in its host's aggregate zone (``nova`` when it has
    none), the control services in "internal" (Nova's default zones)."""
    zone = zones.get(record.host, DEFAULT_ZONE) if is_compute_service(record) \
        else INTERNAL_ZONE
    return {"id": record.id, "binary": record.binary, "host": record.host,
            "zone": zone,
            "status": "disabled" if record.disabled else "enabled",
            "state": "up" if record.is_up else "down",
            "updated_at": iso_micro(record.last_seen),
            "disabled_reason": record.disabled_reason}


def hypervisor_summary(usage: NodeUsage, hypervisor_id: int) -> dict[str, Any]:
    """A node in ``GET /os-hypervisors``."""
    return {"id": hypervisor_id, "hypervisor_hostname": usage.node,
            "state": "up" if usage.service_up else "down",
            "status": "disabled" if usage.service_disabled else "enabled"}


def hypervisor_detail(usage: NodeUsage, hypervisor_id: int, *,
                      service: ServiceRecord | None) -> dict[str, Any]:
    """A node in ``GET /os-hypervisors/detail``: totals are the physical capacity,
    *_used what strato allocated (allocation ratios are not applied here, as in Nova)."""
    total, used = usage.capacity.total, usage.used
    return {
        **hypervisor_summary(usage, hypervisor_id),
        "hypervisor_type": usage.capacity.hypervisor_type,
        "hypervisor_version": usage.capacity.hypervisor_version,
        "host_ip": "", "cpu_info": usage.capacity.cpu_info,
        "vcpus": total.vcpus, "vcpus_used": used.vcpus,
        "memory_mb": total.memory_mb, "memory_mb_used": used.memory_mb,
        "free_ram_mb": total.memory_mb - used.memory_mb,
        "local_gb": total.disk_gb, "local_gb_used": used.disk_gb,
        "free_disk_gb": total.disk_gb - used.disk_gb,
        "disk_available_least": total.disk_gb - used.disk_gb,
        "current_workload": 0, "running_vms": usage.instances,
        "service": {"host": usage.host, "id": service.id if service else None,
                    "disabled_reason": usage.disabled_reason},
    }
