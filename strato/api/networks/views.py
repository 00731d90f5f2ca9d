"""Domain networks, subnets and ports -> Neutron v2.0 JSON."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from strato.api.formats import iso_z
from strato.domain.networks import Network, Port, Subnet

__all__ = ["NETWORK_FILTERS", "PORT_FILTERS", "SUBNET_FILTERS", "network", "port",
           "subnet"]

# The attributes a list may filter on: every attribute the views below show (Neutron's
# ``is_filter`` ones and a few more; a test keeps them in step with the views).
_COMMON_FILTERS = frozenset({"tenant_id", "project_id", "created_at", "updated_at",
                             "revision_number", "tags"})
NETWORK_FILTERS = _COMMON_FILTERS | {
    "id", "name", "description", "admin_state_up", "shared", "mtu", "status", "subnets",
    "router:external", "availability_zone_hints", "availability_zones",
    "port_security_enabled", "is_default"}
SUBNET_FILTERS = _COMMON_FILTERS | {
    "id", "network_id", "name", "description", "ip_version", "cidr", "gateway_ip",
    "allocation_pools", "dns_nameservers", "host_routes", "enable_dhcp", "ipv6_ra_mode",
    "ipv6_address_mode", "subnetpool_id", "service_types"}
PORT_FILTERS = _COMMON_FILTERS | {
    "id", "network_id", "name", "description", "mac_address", "fixed_ips", "device_id",
    "device_owner", "admin_state_up", "status", "security_groups", "binding:host_id",
    "binding:vif_type", "binding:vif_details", "binding:vnic_type", "binding:profile",
    "port_security_enabled", "allowed_address_pairs", "extra_dhcp_opts"}


def _common(project_id: str, created_at: datetime | None,
            updated_at: datetime | None) -> dict[str, Any]:
    return {"tenant_id": project_id, "project_id": project_id,
            "created_at": iso_z(created_at),
            "updated_at": iso_z(updated_at or created_at), "revision_number": 0,
            "tags": []}


def network(net: Network) -> dict[str, Any]:
    return {"id": net.id, "name": net.name, "description": net.description,
            "admin_state_up": net.admin_state_up, "shared": net.shared, "mtu": net.mtu,
            "status": net.status, "subnets": list(net.subnets), "router:external": False,
            "availability_zone_hints": [], "availability_zones": [],
            "port_security_enabled": True, "is_default": False,
            **_common(net.project_id, net.created_at, net.updated_at)}


def subnet(sub: Subnet) -> dict[str, Any]:
    return {"id": sub.id, "network_id": sub.network_id, "name": sub.name,
            "description": sub.description, "ip_version": sub.ip_version, "cidr": sub.cidr,
            "gateway_ip": sub.gateway_ip,
            "allocation_pools": [{"start": p.start, "end": p.end}
                                 for p in sub.allocation_pools],
            "dns_nameservers": list(sub.dns_nameservers),
            "host_routes": [{"destination": r.destination, "nexthop": r.nexthop}
                            for r in sub.host_routes],
            "enable_dhcp": sub.enable_dhcp, "ipv6_ra_mode": None, "ipv6_address_mode": None,
            "subnetpool_id": None, "service_types": [],
            **_common(sub.project_id, sub.created_at, sub.updated_at)}


# Neutron shows a port's binding (where and how it is plugged) to admins only.
_ADMIN_ONLY_PORT_FIELDS = ("binding:host_id", "binding:vif_type", "binding:vif_details",
                           "binding:profile")


def port(p: Port, *, is_admin: bool = True) -> dict[str, Any]:
    shown = _port(p)
    if not is_admin:
        for key in _ADMIN_ONLY_PORT_FIELDS:
            del shown[key]
    return shown


def _port(p: Port) -> dict[str, Any]:
    return {"id": p.id, "network_id": p.network_id, "name": p.name,
            "description": p.description, "mac_address": p.mac_address,
            "fixed_ips": [{"subnet_id": ip.subnet_id, "ip_address": ip.ip_address}
                          for ip in p.fixed_ips],
            "device_id": p.device_id, "device_owner": p.device_owner,
            "admin_state_up": p.admin_state_up, "status": p.status.value,
            "security_groups": list(p.security_groups),
            "binding:host_id": p.binding_host_id, "binding:vif_type": p.binding_vif_type,
            "binding:vif_details": dict(p.binding_vif_details), "binding:vnic_type": "normal",
            "binding:profile": {}, "port_security_enabled": True,
            "allowed_address_pairs": [], "extra_dhcp_opts": [],
            **_common(p.project_id, p.created_at, p.updated_at)}
