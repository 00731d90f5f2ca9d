"""Aggregates and availability zones -> Nova 2.1 ``os-aggregates`` and
``os-availability-zone`` JSON."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from strato.api.formats import iso_micro
from strato.api.hosts.views import is_compute_service
from strato.db.ports import ServiceRecord
from strato.domain.aggregates import DEFAULT_ZONE, INTERNAL_ZONE, Aggregate
from strato.domain.ids import HostName

__all__ = ["Zone", "aggregate_view", "group_zones", "zone_detail", "zone_summary"]


def aggregate_view(aggregate: Aggregate) -> dict[str, Any]:
    """One aggregate (2.1: no ``uuid``, which came with 2.41); aggregates are never
    soft-deleted here, so ``deleted`` is always false."""
    return {"availability_zone": aggregate.availability_zone,
            "created_at": iso_micro(aggregate.created_at),
            "deleted": False, "deleted_at": None,
            "hosts": list(aggregate.hosts),
            "id": aggregate.id,
            "metadata": dict(aggregate.metadata),
            "name": aggregate.name,
            "updated_at": iso_micro(aggregate.updated_at)}


@dataclass(slots=True)
class Zone:
    """A zone and the services of its hosts."""

    name: str
    services: list[ServiceRecord] = field(default_factory=list)

    @property
    def available(self) -> bool:
        """Whether the zone can take work: one of its services is up and enabled."""
        return any(s.is_up and not s.disabled for s in self.services)


def group_zones(services: Iterable[ServiceRecord],
                host_zones: Mapping[HostName, str]) -> list[Zone]:
    """The zones of the services: a compute's is its host's zone (from the aggregates,
    else the default zone), every other service's the internal zone. Available zones
    first, then unavailable ones, each by name."""
    zones: dict[str, Zone] = {}
    for service in services:
        name = (host_zones.get(service.host, DEFAULT_ZONE) if is_compute_service(service)
                else INTERNAL_ZONE)
        zones.setdefault(name, Zone(name)).services.append(service)
    return sorted(zones.values(), key=lambda z: (not z.available, z.name))


def zone_summary(zone: Zone) -> dict[str, Any]:
    """A zone in ``GET /os-availability-zone``."""
    return {"zoneName": zone.name, "zoneState": {"available": zone.available},
            "hosts": None}


def zone_detail(zone: Zone) -> dict[str, Any]:
    """A zone in ``GET /os-availability-zone/detail``, with each host's services."""
    hosts: dict[str, dict[str, Any]] = {}
    for service in sorted(zone.services, key=lambda s: (s.host, s.binary)):
        hosts.setdefault(service.host, {})[service.binary] = {
            "available": service.is_up, "active": not service.disabled,
            "updated_at": iso_micro(service.last_seen)}
    return {"zoneName": zone.name, "zoneState": {"available": zone.available},
            "hosts": hosts}
