"""Domain instances -> Nova 2.1 server JSON."""

from __future__ import annotations

import hashlib
import secrets
import string
from collections.abc import Sequence
from typing import Any

from strato.api.formats import iso_micro, iso_z, links
from strato.domain.instances import Fault, Instance, VmState
from strato.domain.networks import DEFAULT_SECURITY_GROUP, Vif

__all__ = ["addresses", "created_view", "generate_password", "server_basic",
           "server_detail", "server_summary"]

# Nova shows "progress" only for these statuses.
_PROGRESS_STATUSES = frozenset({"ACTIVE", "BUILD", "REBUILD", "RESIZE", "VERIFY_RESIZE",
                                "MIGRATING"})
_FAULT_STATES = frozenset({VmState.ERROR, VmState.DELETED})
# Nova's generate_password alphabet: no look-alike characters (0/O, 1/l/I).
_PASSWORD_CHARS = "".join(c for c in string.ascii_letters + string.digits
                          if c not in "0O1lI")


def generate_password(length: int = 12) -> str:
    """A random admin password, returned once at create time and never stored."""
    return "".join(secrets.choice(_PASSWORD_CHARS) for _ in range(length))


def server_summary(instance: Instance, base: str) -> dict[str, Any]:
    """A server in ``GET /servers``."""
    return {"id": instance.id, "name": instance.display_name,
            "links": links(base, "servers", instance.id)}


def created_view(instance: Instance, base: str, admin_pass: str, *,
                 security_groups: Sequence[str] = ()) -> dict[str, Any]:
    """The body of a ``POST /servers`` answer (the first server of the batch); as Nova,
    it names the security groups the request did (``default`` when it named none)."""
    groups = security_groups or (DEFAULT_SECURITY_GROUP,)
    return {"server": {"id": instance.id, "links": links(base, "servers", instance.id),
                       "OS-DCF:diskConfig": "MANUAL", "adminPass": admin_pass,
                       "security_groups": [{"name": name} for name in groups]}}


def addresses(vifs: Sequence[Vif], *, extended: bool = True) -> dict[str, list[dict[str, Any]]]:
    """Nova's ``addresses``: the fixed IPs of the server's ports by network name, in port
    order (a port without an address still names its network). ``extended`` adds
    ``OS-EXT-IPS:type`` and ``OS-EXT-IPS-MAC:mac_addr`` (the server views have them,
    ``/servers/{id}/ips`` does not)."""
    found: dict[str, list[dict[str, Any]]] = {}
    for vif in vifs:
        entries = found.setdefault(vif.network_name, [])
        for subnet in vif.subnets:
            for ip in subnet.ips:
                entry: dict[str, Any] = {"version": subnet.ip_version, "addr": ip}
                if extended:
                    entry.update({"OS-EXT-IPS:type": "fixed",
                                  "OS-EXT-IPS-MAC:mac_addr": vif.mac_address})
                entries.append(entry)
    return found


def host_id(instance: Instance) -> str:
    """Nova's ``hostId``: the host, hashed with the project so projects cannot compare
    hosts with each other; empty before the instance has a host."""
    if not instance.host:
        return ""
    return hashlib.sha224((instance.project_id + instance.host).encode()).hexdigest()


def server_detail(instance: Instance, base: str, *, is_admin: bool,
                  vifs: Sequence[Vif]) -> dict[str, Any]:
    """A server in ``GET /servers/detail`` and ``GET /servers/{id}``; ``vifs`` are its
    ports (its ``addresses``)."""
    view = {
        **server_summary(instance, base),
        "status": instance.status, "tenant_id": instance.project_id,
        "user_id": instance.user_id, "metadata": dict(instance.metadata),
        "image": _image(instance, base),
        "flavor": {"id": instance.flavor.id,
                   "links": [{"rel": "bookmark",
                              "href": f"{base}/flavors/{instance.flavor.id}"}]},
        "created": iso_z(instance.created_at),
        "updated": iso_z(instance.updated_at or instance.created_at),
        "addresses": addresses(vifs), "accessIPv4": instance.access_ip_v4 or "",
        "accessIPv6": instance.access_ip_v6 or "",
        "hostId": host_id(instance), "key_name": instance.key_name,
        # Nova stores config_drive as text: "True" or "".
        "config_drive": "True" if instance.config_drive else "",
        "OS-EXT-STS:vm_state": str(instance.vm_state),
        "OS-EXT-STS:task_state": instance.task_state and str(instance.task_state),
        "OS-EXT-STS:power_state": int(instance.power_state),
        "OS-EXT-AZ:availability_zone": instance.availability_zone
        or ("nova" if instance.host else ""),
        "OS-SRV-USG:launched_at": iso_micro(instance.launched_at),
        "OS-SRV-USG:terminated_at": iso_micro(instance.terminated_at),
        "OS-DCF:diskConfig": "MANUAL",
        "os-extended-volumes:volumes_attached": [],
        "security_groups": [{"name": "default"}],
    }
    if instance.status in _PROGRESS_STATUSES:
        view["progress"] = 0  # strato does not track build progress (Nova rarely does)
    if instance.fault is not None and instance.vm_state in _FAULT_STATES:
        view["fault"] = _fault(instance.fault, is_admin=is_admin)
    if is_admin:
        view.update(_admin_fields(instance))
    return view


# The fields of Nova's server view without the extensions (OS-EXT-*, key_name,
# security_groups, config_drive...): what Nova 2.1 answers to a rebuild and to
# ``PUT /servers/{id}``.
_BASIC_FIELDS = frozenset({"id", "name", "status", "tenant_id", "user_id", "metadata",
                           "image", "flavor", "created", "updated", "addresses",
                           "accessIPv4", "accessIPv6", "hostId", "links", "progress",
                           "fault", "OS-DCF:diskConfig"})


def server_basic(instance: Instance, base: str, *, is_admin: bool,
                 vifs: Sequence[Vif]) -> dict[str, Any]:
    """The server view without extensions (the answer to a rebuild or an update, as
    Nova 2.1): the detail's core fields, the addresses without ``OS-EXT-IPS``."""
    detail = server_detail(instance, base, is_admin=is_admin, vifs=vifs)
    return {**{k: v for k, v in detail.items() if k in _BASIC_FIELDS},
            "addresses": addresses(vifs, extended=False)}


def _image(instance: Instance, base: str) -> dict[str, Any] | str:
    if not instance.image_ref:
        return ""  # Nova's value for a server booted from a volume
    return {"id": instance.image_ref,
            "links": [{"rel": "bookmark", "href": f"{base}/images/{instance.image_ref}"}]}


def _fault(fault: Fault, *, is_admin: bool) -> dict[str, Any]:
    view: dict[str, Any] = {"code": fault.code, "message": fault.message,
                            "created": iso_z(fault.created_at)}
    # As Nova: details (often a traceback) of an internal error are for admins only.
    if is_admin or fault.code != 500:
        view["details"] = fault.details
    return view


def _admin_fields(instance: Instance) -> dict[str, Any]:
    return {"OS-EXT-SRV-ATTR:host": instance.host,
            "OS-EXT-SRV-ATTR:hypervisor_hostname": instance.node,
            "OS-EXT-SRV-ATTR:instance_name": f"instance-{instance.id[:8]}"}
