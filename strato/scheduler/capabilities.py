"""Two scheduler filters that compare what an instance asks for with what a host's
hypervisor is, as Nova's ComputeCapabilitiesFilter and ImagePropertiesFilter do.

**compute_capabilities_filter** matches the flavor's extra specs against the host's
*capabilities*, a small set of named facts about the node:

    hypervisor_type, hypervisor_version, hypervisor_hostname (the node), host, nodename,
    cpu_info (the node's cpu_info JSON, parsed, so ``cpu_info:arch`` walks into it),
    vcpus_total, vcpus_used, memory_mb and total_usable_ram_mb (physical RAM),
    free_ram_mb, free_disk_mb, total_usable_disk_gb, num_instances, supported_instances

A spec key ``capabilities:<name>[:<sub>...]`` names a capability (a path into it); a key
without any ``:`` that is a capability name is treated the same (Nova's
backward-compatible spelling), and an unscoped key that is *not* a capability is ignored,
as Nova ignores it (other filters, such as the aggregate extra-specs one, use such keys).
Keys in any other scope (``hw:``, ``quota:``, ``trait:``, ``resources:``,
``aggregate_instance_extra_specs:``, ...) are for other parts of the system and ignored.
The capability, rendered as text, must :func:`~strato.scheduler.extra_specs.match` the
spec's value; a ``capabilities:`` path the host does not have fails the host.

Differences from Nova: ``free_ram_mb`` and ``free_disk_mb`` are what the scheduler can
still allocate (:attr:`HostState.free`, so after allocation ratios and the reserved
amount), where Nova's are the node's physical free amounts; ``memory_mb`` is not a Nova
host-state attribute; a whole ``cpu_info`` renders as sorted-key JSON, lists as JSON.

**image_properties_filter** checks that the host can run the image's kind of guest. The
image properties ``hw_architecture``, ``img_hv_type`` and ``hw_vm_mode`` (or their legacy
names ``architecture``, ``hypervisor_type``, ``vm_mode``) are canonicalised (``amd64`` is
``x86_64``, ``i386`` is ``i686``, ``xapi`` is ``xen``, ``hv`` is ``hvm``, ...); when any is
set, one of the host's ``supported_instances`` (architecture, hypervisor type, vm mode)
triples must agree with every one that is set. ``img_hv_requested_version`` (legacy
``hypervisor_version_requires``), e.g. ``">=4.0"`` or ``">=2.11, <7"``, is then checked
against the node's hypervisor version. An image that sets none of the three passes
whatever its requested version, and so does a host reporting version 0 (both as Nova).

Differences from Nova: a triple must agree position by position (Nova only asks that each
wanted value occur somewhere in the triple); an unknown architecture, hypervisor type or
vm mode is compared lowercased instead of being refused as invalid; the hypervisor version
integer is read as libvirt encodes it, ``major * 1000000 + minor * 1000 + micro``, always
three parts (Nova's conversion drops leading zero parts, so 1000 is "1.0" there and
"0.1.0" here; the two agree for any real libvirt version); versions compare as tuples of
integers padded with zeros (``4 == 4.0.0``), a clause may be a bare version (meaning
``==``), and an unreadable requirement fails the host with a reason instead of raising.

Both are pure and cheap: a node's cpu_info text is parsed once (cached per text), the
flavor's requirement strings once (:mod:`strato.scheduler.extra_specs`), and only the
capabilities a flavor names are computed for each host.
"""

from __future__ import annotations

import json
import operator
import re
from collections.abc import Callable, Mapping
from functools import lru_cache
from types import MappingProxyType

from strato.scheduler.extra_specs import match
from strato.scheduler.state import HostState, RequestSpec

__all__ = ["CAPABILITY_NAMES", "canonical_arch", "canonical_hv_type", "canonical_vm_mode",
           "capabilities", "compute_capabilities_filter", "hypervisor_version_str",
           "image_properties_filter"]

_SCOPE = "capabilities"


@lru_cache(maxsize=16384)
def _parse_cpu_info(text: str) -> Mapping[str, object] | None:
    """The node's cpu_info JSON object, read-only; None when blank or not an object."""
    try:
        parsed = json.loads(text)
    except ValueError:
        return None
    if not isinstance(parsed, dict):
        return None
    return MappingProxyType(parsed)


_CAPABILITIES: Mapping[str, Callable[[HostState], object]] = MappingProxyType({
    "hypervisor_type": lambda h: h.capacity.hypervisor_type,
    "hypervisor_version": lambda h: h.capacity.hypervisor_version,
    "hypervisor_hostname": lambda h: h.node,
    "host": lambda h: h.host,
    "nodename": lambda h: h.node,
    "cpu_info": lambda h: _parse_cpu_info(h.capacity.cpu_info),
    "vcpus_total": lambda h: h.capacity.total.vcpus,
    "vcpus_used": lambda h: h.used.vcpus,
    "memory_mb": lambda h: h.capacity.total.memory_mb,
    "total_usable_ram_mb": lambda h: h.capacity.total.memory_mb,
    "free_ram_mb": lambda h: h.free.memory_mb,
    "free_disk_mb": lambda h: h.free.disk_gb * 1024,
    "total_usable_disk_gb": lambda h: h.capacity.total.disk_gb,
    "num_instances": lambda h: h.instances,
    "supported_instances": lambda h: [list(t) for t in h.capacity.supported_instances],
})

CAPABILITY_NAMES = frozenset(_CAPABILITIES)


def capabilities(host: HostState) -> Mapping[str, object]:
    """Every capability of ``host`` by name (None where the host has not got it).

    The filter computes only those a flavor names; this is for display and tests."""
    return {name: get(host) for name, get in _CAPABILITIES.items()}


def _lookup(host: HostState, path: tuple[str, ...]) -> object | None:
    """The capability at ``path`` (names, then keys into nested objects), or None."""
    get = _CAPABILITIES.get(path[0])
    if get is None:
        return None
    cap: object | None = get(host)
    for key in path[1:]:
        if not isinstance(cap, Mapping):
            return None
        cap = cap.get(key)
    return cap


def _render(cap: object) -> str:
    """A capability as the text a requirement is matched against."""
    if isinstance(cap, str):
        return cap
    if isinstance(cap, Mapping | list | tuple):
        return json.dumps(dict(cap) if isinstance(cap, Mapping) else cap, sort_keys=True)
    return str(cap)


@lru_cache(maxsize=4096)
def _capability_path(key: str) -> tuple[str, ...] | None:
    """The capability path an extra spec key names, or None when the key is not ours."""
    path = key.split(":")
    if len(path) == 1:
        return (key,) if key in _CAPABILITIES else None
    if path[0] != _SCOPE:
        return None
    return tuple(path[1:])


def compute_capabilities_filter(host: HostState, spec: RequestSpec) -> str | None:
    """The host's capabilities must satisfy every capability extra spec of the flavor."""
    flavor = spec.flavor
    if flavor is None or not flavor.extra_specs:
        return None
    for key, requirement in flavor.extra_specs.items():
        path = _capability_path(key)
        if path is None:
            continue
        cap = _lookup(host, path)
        if cap is None:
            return f"{key}: host has no such capability, flavor wants {requirement}"
        value = _render(cap)
        if not match(value, requirement):
            return f"{key}: host has {value}, flavor wants {requirement}"
    return None


# -- image properties ------------------------------------------------------------------

_ARCH_ALIASES = MappingProxyType({
    "amd64": "x86_64", "x64": "x86_64", "x86-64": "x86_64",
    "i386": "i686", "i486": "i686", "i586": "i686", "x86": "i686",
    "x86_32": "i686", "x86_32p": "i686",
    "arm64": "aarch64",
})
_HV_TYPE_ALIASES = MappingProxyType({"xapi": "xen"})
_VM_MODE_ALIASES = MappingProxyType({"hv": "hvm", "pv": "xen", "baremetal": "hvm"})


def canonical_arch(name: str) -> str:
    """An architecture name as Nova spells it (``amd64`` -> ``x86_64``)."""
    lowered = name.strip().lower()
    return _ARCH_ALIASES.get(lowered, lowered)


def canonical_hv_type(name: str) -> str:
    """A hypervisor type as Nova spells it (``xapi`` -> ``xen``)."""
    lowered = name.strip().lower()
    return _HV_TYPE_ALIASES.get(lowered, lowered)


def canonical_vm_mode(name: str) -> str:
    """A vm mode as Nova spells it (``hv`` -> ``hvm``, ``pv`` -> ``xen``)."""
    lowered = name.strip().lower()
    return _VM_MODE_ALIASES.get(lowered, lowered)


def _property(props: Mapping[str, str], name: str, legacy: str) -> str | None:
    value = props.get(name) or props.get(legacy)
    return value if value and value.strip() else None


@lru_cache(maxsize=4096)
def _canonical_instances(
        triples: tuple[tuple[str, str, str], ...]) -> tuple[tuple[str, str, str], ...]:
    return tuple((canonical_arch(a), canonical_hv_type(h), canonical_vm_mode(m))
                 for a, h, m in triples)


def hypervisor_version_str(version: int) -> str:
    """A libvirt-encoded version number as text: 8002001 -> ``"8.2.1"``."""
    return f"{version // 1_000_000}.{version // 1000 % 1000}.{version % 1000}"


_CLAUSE = re.compile(r"^\s*(<=|>=|==|!=|<|>)?\s*(\d+(?:\.\d+)*)\s*$")
_COMPARE: Mapping[str, Callable[[tuple[int, ...], tuple[int, ...]], bool]] = {
    "<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne,
    ">": operator.gt, ">=": operator.ge,
}


def _padded(version: tuple[int, ...], width: int) -> tuple[int, ...]:
    return version + (0,) * (width - len(version))


@lru_cache(maxsize=1024)
def _parse_version_requirement(
        text: str) -> tuple[tuple[str, tuple[int, ...]], ...] | None:
    """``">=4.0, <6"`` as ((">=", (4, 0)), ("<", (6,))); None when unreadable."""
    clauses = []
    for part in text.split(","):
        found = _CLAUSE.match(part)
        if found is None:
            return None
        clauses.append((found.group(1) or "==",
                        tuple(int(n) for n in found.group(2).split("."))))
    return tuple(clauses)


def _version_satisfies(version: int, clauses: tuple[tuple[str, tuple[int, ...]], ...]) -> bool:
    have = (version // 1_000_000, version // 1000 % 1000, version % 1000)
    for op, want in clauses:
        width = max(len(have), len(want))
        if not _COMPARE[op](_padded(have, width), _padded(want, width)):
            return False
    return True


_Want = tuple[str | None, str | None, str | None]


@lru_cache(maxsize=1024)
def _canonical_want(arch: str | None, hv_type: str | None, vm_mode: str | None) -> _Want:
    return (canonical_arch(arch) if arch is not None else None,
            canonical_hv_type(hv_type) if hv_type is not None else None,
            canonical_vm_mode(vm_mode) if vm_mode is not None else None)


def _describe(want: _Want) -> str:
    return " ".join(f"{label}={value}" for label, value
                    in zip(("arch", "hv_type", "vm_mode"), want, strict=True)
                    if value is not None)


def image_properties_filter(host: HostState, spec: RequestSpec) -> str | None:
    """The host must run the image's architecture, hypervisor type, vm mode and version."""
    image = spec.image
    if image is None or not image.properties:
        return None
    props = image.properties
    arch = _property(props, "hw_architecture", "architecture")
    hv_type = _property(props, "img_hv_type", "hypervisor_type")
    vm_mode = _property(props, "hw_vm_mode", "vm_mode")
    if arch is None and hv_type is None and vm_mode is None:
        return None
    want_arch, want_hv, want_mode = want = _canonical_want(arch, hv_type, vm_mode)
    supported = host.capacity.supported_instances
    if not supported:
        return f"image wants {_describe(want)}; host reports no supported instance types"
    for have_arch, have_hv, have_mode in _canonical_instances(supported):
        if ((want_arch is None or want_arch == have_arch)
                and (want_hv is None or want_hv == have_hv)
                and (want_mode is None or want_mode == have_mode)):
            break
    else:
        runs = ", ".join("/".join(triple) for triple in supported)
        return f"image wants {_describe(want)}; host runs {runs}"
    requested = _property(props, "img_hv_requested_version", "hypervisor_version_requires")
    version = host.capacity.hypervisor_version
    if requested is None or not version:
        return None
    clauses = _parse_version_requirement(requested)
    if clauses is None:
        return (f"img_hv_requested_version: cannot read {requested!r} as a version "
                f"requirement (host has {hypervisor_version_str(version)})")
    if not _version_satisfies(version, clauses):
        return (f"img_hv_requested_version: host has {host.capacity.hypervisor_type} "
                f"{hypervisor_version_str(version)}, image wants {requested}")
    return None
