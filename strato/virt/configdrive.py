"""The OpenStack config drive: an ISO 9660 image labelled ``config-2`` that carries an
instance's metadata, the way Nova lays it out, so cloud-init and our tiny guest's init read
it unchanged.

Layout, for every version directory in :data:`VERSIONS`::

    openstack/<version>/meta_data.json
    openstack/<version>/network_data.json
    openstack/<version>/vendor_data.json
    openstack/<version>/vendor_data2.json
    openstack/<version>/user_data           (only when the request carried user data)
    openstack/content/0000, 0001, ...       (injected files, named by meta_data.json)

:func:`metadata_tree` builds the files (pure, easy to test); :func:`write_config_drive`
packs them into the image. Guests mount the drive through Rock Ridge (Linux) or Joliet
(Windows), which carry the real names; the plain ISO 9660 names are generated placeholders.

network_data.json is Nova's (``nova/virt/netutils.py`` ``get_network_metadata``) built
from the instance's VIFs: a link per VIF, a static network per fixed IP, and the DNS
servers. It is written one key per line, keys in a fixed order, because the tiny guest's
init reads it with awk, not a JSON parser.
"""

from __future__ import annotations

import contextlib
import io
import ipaddress
import json
import os
import posixpath
import re
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pycdlib

from strato.domain.errors import Invalid
from strato.domain.hostnames import HOSTNAME_PATTERN
from strato.domain.networks import Vif, VifSubnet

__all__ = ["MAX_FILE_BYTES", "MAX_FILE_PATH_BYTES", "MAX_FILES", "VERSIONS", "VOLUME_LABEL",
           "DriveFile", "InstanceMetadata", "metadata_tree", "network_data",
           "write_config_drive"]

VERSIONS = ("2018-08-27", "latest")
"""The dated metadata version we speak, plus ``latest``, which always holds the newest."""

VOLUME_LABEL = "config-2"
"""The label cloud-init and the guest's init look for to find the drive."""

# Nova's default limits on injected files (quotas injected_files,
# injected_file_content_bytes and injected_file_path_bytes).
MAX_FILES = 5
MAX_FILE_BYTES = 10240
MAX_FILE_PATH_BYTES = 255

_SAFE_UUID = re.compile(r"^[0-9A-Za-z][0-9A-Za-z._-]*$")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


@dataclass(frozen=True, slots=True, kw_only=True)
class DriveFile:
    """A file written onto the config drive for the guest: a request's
    :class:`strato.domain.requests.InjectedFile` (``personality``) with its contents
    decoded."""

    path: str
    """Absolute guest path, e.g. ``/etc/motd``."""
    contents: bytes


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceMetadata:
    """Everything the config drive tells a guest about itself."""

    uuid: str
    name: str
    hostname: str
    project_id: str
    availability_zone: str | None = None
    launch_index: int = 0
    public_keys: Mapping[str, str] = field(default_factory=dict)
    """Key pair name -> public key text."""
    metadata: Mapping[str, str] = field(default_factory=dict)
    files: tuple[DriveFile, ...] = ()
    user_data: bytes | None = None
    """Already base64-decoded; written byte for byte."""
    vifs: tuple[Vif, ...] = ()
    """The instance's ports in NIC order (the first is the guest's eth0)."""
    vendor_data: Mapping[str, Any] = field(default_factory=dict)


# ------------------------------------------------------------------------- validation
def _check_identity(md: InstanceMetadata) -> None:
    """The guest's init reads ``uuid`` and ``hostname`` with sed, not a JSON parser, so
    both must be plain tokens JSON writes without escapes."""
    if not _SAFE_UUID.fullmatch(md.uuid):
        raise Invalid(f"instance uuid {md.uuid!r} is not a plain identifier")
    if not HOSTNAME_PATTERN.fullmatch(md.hostname):
        raise Invalid(f"hostname {md.hostname!r} is not a sanitised hostname")


def _check_file_path(path: str) -> None:
    """An injected path is written into the guest by its init as root, so it must be an
    unambiguous absolute file path: anything relative, un-normalised or climbing with
    '..' could land somewhere other than the path the user (and any policy) saw."""
    if _CONTROL.search(path):
        raise Invalid(f"injected file path {path!r} contains control characters (e.g. NUL)")
    if len(path.encode("utf-8")) > MAX_FILE_PATH_BYTES:
        raise Invalid(f"injected file path is longer than {MAX_FILE_PATH_BYTES} bytes")
    if not path.startswith("/") or path.startswith("//"):
        raise Invalid(f"injected file path {path!r} must be absolute (one leading '/')")
    if ".." in path.split("/"):
        raise Invalid(f"injected file path {path!r} must not contain '..'")
    if path == "/" or posixpath.normpath(path) != path:
        raise Invalid(f"injected file path {path!r} must be a normalised file path")


def _check_files(files: tuple[DriveFile, ...]) -> None:
    """Apply Nova's injected-file limits, so a drive stays small and a guest's init never
    writes the same path twice with different contents."""
    if len(files) > MAX_FILES:
        raise Invalid(f"at most {MAX_FILES} injected files are allowed, got {len(files)}")
    seen: set[str] = set()
    for injected in files:
        _check_file_path(injected.path)
        if len(injected.contents) > MAX_FILE_BYTES:
            raise Invalid(f"injected file {injected.path!r} is larger than "
                          f"{MAX_FILE_BYTES} bytes")
        if injected.path in seen:
            raise Invalid(f"injected file path {injected.path!r} is given twice")
        seen.add(injected.path)


# ----------------------------------------------------------------------- the file tree
def _json_default(value: object) -> object:
    """Let callers pass any ``Mapping`` (a read-only proxy, say), which ``json`` alone
    refuses."""
    if isinstance(value, Mapping):
        return dict(value)
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


def _to_json(data: Mapping[str, Any]) -> bytes:
    """JSON exactly as Nova writes it: ASCII only and ``", "``/``": "`` separators, so
    ``"uuid": "<value>"`` is a fixed pattern for the guest's sed."""
    return json.dumps(dict(data), ensure_ascii=True, separators=(", ", ": "),
                      default=_json_default).encode("ascii")


def _network_json(data: Mapping[str, Any]) -> bytes:
    """network_data.json: ASCII, indented one key per line, keys in insertion order, so
    the guest's awk sees every scalar on its own line."""
    return (json.dumps(dict(data), ensure_ascii=True, indent=1) + "\n").encode("ascii")


def _content_path(index: int) -> str:
    """Where injected file ``index`` lives, as meta_data.json names it."""
    return f"/content/{index:04d}"


def _meta_data(md: InstanceMetadata) -> dict[str, Any]:
    """meta_data.json with Nova's keys; every key is present even when empty, so a
    guest never has to guess whether a missing key means "none"."""
    return {
        "uuid": md.uuid,
        "name": md.name,
        "hostname": md.hostname,
        "availability_zone": md.availability_zone,
        "project_id": md.project_id,
        "launch_index": md.launch_index,
        "meta": dict(md.metadata),
        "public_keys": dict(md.public_keys),
        "keys": [{"name": name, "type": "ssh", "data": key}
                 for name, key in md.public_keys.items()],
        "files": [{"path": f.path, "content_path": _content_path(i)}
                  for i, f in enumerate(md.files)],
        "devices": [],
    }


def _link_id(vif: Vif) -> str:
    """The tap device's name, which Nova uses as the link id (its VIF ``devname``)."""
    return f"tap{vif.port_id[:11]}"


def _address(text: str, what: str) -> str:
    """``text`` as a normalised IP address; :class:`Invalid` if it is not one."""
    try:
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise Invalid(f"{what} {text!r} is not an IP address") from None


def _cidr(text: str, what: str) -> ipaddress.IPv4Network | ipaddress.IPv6Network:
    try:
        return ipaddress.ip_network(text, strict=False)
    except ValueError:
        raise Invalid(f"{what} {text!r} is not a CIDR") from None


def _routes(subnet: VifSubnet) -> list[dict[str, str]]:
    """The default route through the gateway (if any), then the subnet's host routes."""
    routes = []
    if subnet.gateway_ip:
        anywhere = "0.0.0.0" if subnet.ip_version == 4 else "::"
        routes.append({"network": anywhere, "netmask": anywhere,
                       "gateway": _address(subnet.gateway_ip, "gateway")})
    for route in subnet.host_routes:
        dest = _cidr(route.destination, "host route destination")
        routes.append({"network": str(dest.network_address), "netmask": str(dest.netmask),
                       "gateway": _address(route.nexthop, "host route nexthop")})
    return routes


def _dns(subnet: VifSubnet) -> list[dict[str, str]]:
    return [{"type": "dns", "address": _address(server, "DNS server")}
            for server in subnet.dns_nameservers]


def network_data(vifs: Iterable[Vif]) -> dict[str, Any]:
    """Nova's network_data.json for ``vifs``: one link per VIF, one static ``ipv4`` or
    ``ipv6`` network per fixed IP (``network0``, ``network1``, ...), and every DNS server
    once. Keys are in the order the guest's init expects (a network's ``type``,
    ``link``, ``ip_address`` and ``netmask`` before its ``routes``)."""
    links: list[dict[str, Any]] = []
    networks: list[dict[str, Any]] = []
    services: list[dict[str, str]] = []
    for vif in vifs:
        link = _link_id(vif)
        links.append({"id": link, "vif_id": vif.port_id, "type": "bridge", "mtu": vif.mtu,
                      "ethernet_mac_address": vif.mac_address})
        for subnet in vif.subnets:
            if subnet.ip_version not in (4, 6):
                raise Invalid(f"subnet {subnet.id} has IP version {subnet.ip_version}")
            netmask = str(_cidr(subnet.cidr, "subnet CIDR").netmask)
            dns = _dns(subnet)
            for ip in subnet.ips:
                networks.append({
                    "id": f"network{len(networks)}",
                    "type": f"ipv{subnet.ip_version}",
                    "link": link,
                    "ip_address": _address(ip, "fixed IP"),
                    "netmask": netmask,
                    "routes": _routes(subnet),
                    "network_id": vif.network_id,
                    "services": dns,
                })
            if subnet.ips:
                services += [server for server in dns if server not in services]
    return {"links": links, "networks": networks, "services": services}


def metadata_tree(md: InstanceMetadata) -> dict[str, bytes]:
    """Every file of the config drive, path (relative, '/'-separated) -> contents.

    Raises :class:`Invalid` for injected files that break the rules, for a uuid or
    hostname the guest's init could not read back, and for a VIF address that is not
    one."""
    _check_identity(md)
    _check_files(md.files)
    per_version = {
        "meta_data.json": _to_json(_meta_data(md)),
        "network_data.json": _network_json(network_data(md.vifs)),
        "vendor_data.json": _to_json(md.vendor_data),
        "vendor_data2.json": _to_json({}),
    }
    if md.user_data is not None:
        per_version["user_data"] = md.user_data
    tree = {f"openstack/{version}/{name}": data
            for version in VERSIONS for name, data in per_version.items()}
    for index, injected in enumerate(md.files):
        tree[f"openstack{_content_path(index)}"] = injected.contents
    return tree


# ---------------------------------------------------------------------------- the image
def _directories(paths: Iterable[str]) -> list[str]:
    """Every directory the files need, parents before children (the order the image
    needs them created in)."""
    dirs: set[str] = set()
    for path in paths:
        parent = posixpath.dirname(path)
        while parent:
            dirs.add(parent)
            parent = posixpath.dirname(parent)
    return sorted(dirs, key=lambda d: (d.count("/"), d))


def _build_iso(tree: Mapping[str, bytes]) -> pycdlib.PyCdlib:
    """An in-memory image of ``tree``. ISO 9660 names are generated (``D0001``,
    ``F0001.;1``): they are unique by construction and valid at every interchange level,
    whatever the real names are; Rock Ridge and Joliet carry the real names."""
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=4, joliet=3, rock_ridge="1.09", vol_ident=VOLUME_LABEL,
            sys_ident="LINUX", app_ident_str="strato")
    iso_dirs = {"": ""}
    for number, directory in enumerate(_directories(tree), start=1):
        iso_path = f"{iso_dirs[posixpath.dirname(directory)]}/D{number:04d}"
        iso_dirs[directory] = iso_path
        iso.add_directory(iso_path=iso_path, rr_name=posixpath.basename(directory),
                          joliet_path=f"/{directory}")
    for number, (path, data) in enumerate(sorted(tree.items()), start=1):
        iso.add_fp(io.BytesIO(data), len(data),
                   iso_path=f"{iso_dirs[posixpath.dirname(path)]}/F{number:04d}.;1",
                   rr_name=posixpath.basename(path), joliet_path=f"/{path}")
    return iso


def write_config_drive(md: InstanceMetadata, path: Path) -> None:
    """Write the config drive for ``md`` to ``path``.

    Blocking (callers run it in a thread). The image goes to a temporary file beside
    ``path`` and is renamed over it, so a guest or a crash never sees half a drive. The
    file is private to this user (mode 0600): it holds user data and keys."""
    iso = _build_iso(metadata_tree(md))
    fd, tmp_name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as out:
            iso.write_fp(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp_name, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp_name)
        raise
    finally:
        iso.close()
