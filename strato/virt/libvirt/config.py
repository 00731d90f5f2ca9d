"""Domain XML from typed objects.

Two pure steps, so that golden files can pin the result:

- :func:`guest_spec` decides *what* the guest is from the request, the host's facts, the
  disks the image backend made and the network's VIFs (Nova's ``_get_guest_config``);
- :func:`domain_xml` writes that down as libvirt XML (Nova's ``LibvirtConfigGuest``).

The XML is built with ElementTree, never by string formatting: every value a user chose
(the display name, metadata, image properties) is escaped by the serializer, so no name
can add an element or an attribute.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Literal

from strato.domain.requests import BootRequest

__all__ = ["DiskSpec", "GuestSpec", "HostCaps", "KernelBoot", "METADATA_NS", "Nic",
           "domain_xml", "guest_spec"]

METADATA_NS = "https://strato.dev/xmlns/instance/1.0"
PRODUCT = "strato"
MANUFACTURER = "strato"
FAMILY = "Virtual Machine"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostCaps:
    """What the host offers that changes the XML."""

    virt_type: Literal["kvm", "qemu"]
    arch: str = "x86_64"
    machine: str = "pc"
    emulator: str = "/usr/bin/qemu-system-x86_64"
    version: str = "0.1.0"          # goes into SMBIOS, like Nova's release
    vnc_listen: str = "127.0.0.1"
    disk_cache: str = "none"         # "none" needs O_DIRECT; "writeback" otherwise


@dataclass(frozen=True, slots=True, kw_only=True)
class DiskSpec:
    """One disk or cdrom as the guest sees it."""

    path: Path
    format: str                      # "qcow2" | "raw"
    target: str                      # "vda", "hdd", ...
    bus: Literal["virtio", "ide", "sata", "scsi"] = "virtio"
    device: Literal["disk", "cdrom"] = "disk"
    readonly: bool = False
    serial: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Nic:
    """One NIC on a tap the compute made and plugged into its bridge beforehand, so
    libvirt only opens it (``managed='no'``) and never creates or deletes it."""

    mac: str
    tap: str
    mtu: int | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelBoot:
    kernel: Path
    initrd: Path | None
    cmdline: str


@dataclass(frozen=True, slots=True, kw_only=True)
class GuestSpec:
    """A whole guest, ready to be written as XML."""

    name: str
    uuid: str
    title: str
    virt_type: Literal["kvm", "qemu"]
    arch: str
    machine: str
    emulator: str
    memory_mib: int
    vcpus: int
    sysinfo: dict[str, str]
    disks: tuple[DiskSpec, ...]
    nics: tuple[Nic, ...] = ()
    kernel_boot: KernelBoot | None = None
    console_log: Path
    vnc_listen: str = "127.0.0.1"
    disk_cache: str = "none"
    metadata: dict[str, str] = field(default_factory=dict)


def guest_spec(req: BootRequest, *, host: HostCaps, name: str, disks: Sequence[DiskSpec],
               nics: Sequence[Nic], console_log: Path, kernel_boot: KernelBoot | None,
               created_at: datetime) -> GuestSpec:
    """What the guest is (Nova's ``_get_guest_config``), from the request and host."""
    flavor = req.flavor
    return GuestSpec(
        name=name, uuid=req.instance_id, title=req.name, virt_type=host.virt_type,
        arch=host.arch, machine=host.machine, emulator=host.emulator,
        memory_mib=flavor.memory_mb, vcpus=flavor.vcpus,
        sysinfo={"manufacturer": MANUFACTURER, "product": PRODUCT, "version": host.version,
                 "serial": req.instance_id, "uuid": req.instance_id, "family": FAMILY},
        disks=tuple(disks), nics=tuple(nics), kernel_boot=kernel_boot,
        console_log=console_log, vnc_listen=host.vnc_listen, disk_cache=host.disk_cache,
        metadata={"name": req.name, "flavor": flavor.name, "project": req.project_id,
                  "user": req.user_id, "image": req.image.id,
                  "created": created_at.isoformat(timespec="seconds")})


def _sub(parent: ET.Element, tag: str, text: str | None = None, **attrs: str) -> ET.Element:
    el = ET.SubElement(parent, tag, attrs)
    if text is not None:
        el.text = text
    return el


def domain_xml(spec: GuestSpec) -> str:
    """The libvirt domain XML of ``spec`` (stable: attribute order and indentation are
    fixed, so golden files can compare it byte for byte)."""
    dom = ET.Element("domain", {"type": spec.virt_type})
    _sub(dom, "name", spec.name)
    _sub(dom, "uuid", spec.uuid)
    _sub(dom, "title", spec.title)
    _metadata(dom, spec)
    _sub(dom, "memory", str(spec.memory_mib), unit="MiB")
    _sub(dom, "vcpu", str(spec.vcpus))
    _sysinfo(dom, spec)
    _os(dom, spec)
    features = _sub(dom, "features")
    _sub(features, "acpi")
    _sub(features, "apic")
    _cpu(dom, spec)
    _clock(dom, spec)
    _sub(dom, "on_poweroff", "destroy")
    _sub(dom, "on_reboot", "restart")
    _sub(dom, "on_crash", "destroy")
    _devices(dom, spec)
    ET.indent(dom, space="  ")
    return ET.tostring(dom, encoding="unicode") + "\n"


def _metadata(dom: ET.Element, spec: GuestSpec) -> None:
    ET.register_namespace("strato", METADATA_NS)
    meta = _sub(dom, "metadata")
    inst = _sub(meta, f"{{{METADATA_NS}}}instance")
    for key, value in spec.metadata.items():
        _sub(inst, f"{{{METADATA_NS}}}{key}", value)


def _sysinfo(dom: ET.Element, spec: GuestSpec) -> None:
    system = _sub(_sub(dom, "sysinfo", type="smbios"), "system")
    for key, value in spec.sysinfo.items():
        _sub(system, "entry", value, name=key)


def _os(dom: ET.Element, spec: GuestSpec) -> None:
    os_el = _sub(dom, "os")
    _sub(os_el, "type", "hvm", arch=spec.arch, machine=spec.machine)
    if spec.kernel_boot is not None:
        _sub(os_el, "kernel", str(spec.kernel_boot.kernel))
        if spec.kernel_boot.initrd is not None:
            _sub(os_el, "initrd", str(spec.kernel_boot.initrd))
        _sub(os_el, "cmdline", spec.kernel_boot.cmdline)
    else:
        _sub(os_el, "boot", dev="hd")
    _sub(os_el, "smbios", mode="sysinfo")


def _cpu(dom: ET.Element, spec: GuestSpec) -> None:
    # KVM: expose the host's CPU model (live-migratable within a family). TCG emulates
    # QEMU's default model; asking for host-model there would fail or be meaningless.
    if spec.virt_type == "kvm":
        _sub(dom, "cpu", mode="host-model", match="exact")


def _clock(dom: ET.Element, spec: GuestSpec) -> None:
    clock = _sub(dom, "clock", offset="utc")
    _sub(clock, "timer", name="pit", tickpolicy="delay")
    _sub(clock, "timer", name="rtc", tickpolicy="catchup")
    _sub(clock, "timer", name="hpet", present="no")


def _devices(dom: ET.Element, spec: GuestSpec) -> None:
    devices = _sub(dom, "devices")
    _sub(devices, "emulator", spec.emulator)
    for disk in spec.disks:
        _disk(devices, disk, spec.disk_cache)
    for nic in spec.nics:
        iface = _sub(devices, "interface", type="ethernet")
        _sub(iface, "mac", address=nic.mac)
        _sub(iface, "model", type="virtio")
        _sub(iface, "target", dev=nic.tap, managed="no")
        if nic.mtu:
            _sub(iface, "mtu", size=str(nic.mtu))
    # One serial port: QEMU's pty (for `virsh console`), with everything the guest
    # prints also logged by virtlogd to console.log in the instance directory. Appended
    # across reboots and resumes, so the console keeps its history (virtlogd rotates it).
    serial = _sub(devices, "serial", type="pty")
    _sub(serial, "log", file=str(spec.console_log), append="on")
    _sub(serial, "target", port="0")
    console = _sub(devices, "console", type="pty")
    _sub(console, "target", type="serial", port="0")
    _sub(devices, "input", type="tablet", bus="usb")
    _sub(devices, "graphics", type="vnc", autoport="yes", listen=spec.vnc_listen)
    _sub(_sub(devices, "video"), "model", type="vga")
    rng = _sub(devices, "rng", model="virtio")
    _sub(rng, "backend", "/dev/urandom", model="random")
    _sub(devices, "memballoon", model="virtio")


def _disk(devices: ET.Element, disk: DiskSpec, cache: str) -> None:
    el = _sub(devices, "disk", type="file", device=disk.device)
    _sub(el, "driver", name="qemu", type=disk.format,
         cache=cache)
    _sub(el, "source", file=str(disk.path))
    _sub(el, "target", dev=disk.target, bus=disk.bus)
    if disk.readonly:
        _sub(el, "readonly")
    if disk.serial:
        _sub(el, "serial", disk.serial)
