"""The domain XML: pinned by golden files, and safe whatever the user named things.

Regenerate the golden files after an intended change with
``UPDATE_GOLDEN=1 pytest tests/unit/test_domain_xml.py`` and review the diff.
"""

from __future__ import annotations

import os
import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from pathlib import Path

import pytest

from strato.domain.ids import FlavorId, ImageId, InstanceId, ProjectId, ReservationId, UserId
from strato.domain.images import Image, ImageStatus
from strato.domain.requests import BootRequest
from strato.domain.resources import Flavor
from strato.virt.libvirt.config import (
    METADATA_NS,
    DiskSpec,
    HostCaps,
    KernelBoot,
    Nic,
    domain_xml,
    guest_spec,
)

GOLDEN = Path(__file__).parent.parent / "golden"
UUID = InstanceId("0f8f2a4e-3c1b-4d7e-9a55-1b2c3d4e5f60")
DIR = Path("/var/lib/strato/instances") / UUID
CREATED = datetime(2026, 11, 21, 12, 0, tzinfo=UTC)
TCG = HostCaps(virt_type="qemu")
KVM = HostCaps(virt_type="kvm", machine="q35", disk_cache="writeback")


def request(name: str = "web-1", **flavor: int) -> BootRequest:
    return BootRequest(
        instance_id=UUID, project_id=ProjectId("p-1"), user_id=UserId("u-1"), name=name,
        flavor=Flavor(id=FlavorId("1"), name="m1.tiny", vcpus=flavor.get("vcpus", 1),
                      memory_mb=flavor.get("memory_mb", 256), root_gb=1),
        image=Image(id=ImageId("img-1"), name="tiny", status=ImageStatus.ACTIVE),
        reservation_id=ReservationId("r-1"))


def root(fmt: str = "qcow2") -> DiskSpec:
    return DiskSpec(path=DIR / "disk", format=fmt, target="vda")


CONFIG_DRIVE = DiskSpec(path=DIR / "disk.config", format="raw", target="hdd", bus="ide",
                        device="cdrom", readonly=True)


def render(req: BootRequest, host: HostCaps, disks: list[DiskSpec], *,
           nics: tuple[Nic, ...] = (), kernel: KernelBoot | None = None) -> str:
    spec = guest_spec(req, host=host, name=f"strato-{UUID}", disks=disks, nics=nics,
                      console_log=DIR / "console.log", kernel_boot=kernel,
                      created_at=CREATED)
    return domain_xml(spec)


CASES = {
    "tcg_disk_config_drive": lambda: render(request(), TCG, [root(), CONFIG_DRIVE]),
    "kvm_ephemeral_swap_vif": lambda: render(
        request(vcpus=4, memory_mb=4096), KVM,
        [root(), DiskSpec(path=DIR / "disk.eph0", format="qcow2", target="vdb"),
         DiskSpec(path=DIR / "disk.swap", format="qcow2", target="vdc")],
        nics=(Nic(mac="fa:16:3e:00:00:01", tap="tap-port1", mtu=1450),)),
    "tcg_kernel_boot_raw": lambda: render(
        request(), TCG, [root("raw"), CONFIG_DRIVE.__class__(
            path=DIR / "disk.config", format="raw", target="vdb", readonly=True)],
        kernel=KernelBoot(kernel=DIR / "kernel", initrd=DIR / "ramdisk",
                          cmdline="console=ttyS0 quiet")),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_domain_xml_matches_its_golden_file(case: str) -> None:
    xml = CASES[case]()
    golden = GOLDEN / f"domain_{case}.xml"
    if os.environ.get("UPDATE_GOLDEN"):
        golden.write_text(xml)
    assert xml == golden.read_text()


def test_the_xml_is_what_libvirt_needs() -> None:
    dom = ET.fromstring(CASES["tcg_disk_config_drive"]())
    assert dom.get("type") == "qemu" and dom.findtext("uuid") == UUID
    assert dom.find("cpu") is None  # TCG: QEMU's own model, no host-model
    entries = {e.get("name"): e.text for e in dom.iterfind("sysinfo/system/entry")}
    assert entries["uuid"] == entries["serial"] == UUID
    serial = dom.find("devices/serial[@type='pty']")
    assert serial is not None
    assert serial.find("log").get("file") == str(DIR / "console.log")  # type: ignore[union-attr]
    assert dom.find("devices/graphics").get("listen") == "127.0.0.1"  # type: ignore[union-attr]
    cdrom = dom.find("devices/disk[@device='cdrom']")
    assert cdrom is not None and cdrom.find("readonly") is not None
    assert cdrom.find("target").get("bus") == "ide"  # type: ignore[union-attr]
    kvm = ET.fromstring(CASES["kvm_ephemeral_swap_vif"]())
    assert kvm.find("cpu").get("mode") == "host-model"  # type: ignore[union-attr]
    assert [t.get("dev") for t in kvm.iterfind("devices/disk/target")] == ["vda", "vdb", "vdc"]


HOSTILE = [
    "</title><on_poweroff>restart</on_poweroff><title>",
    "a & b < c > d \" e ' f",
    "]]><!-- x --><![CDATA[",
    "ünïcödé ☃ 名前",
    "<!DOCTYPE x [<!ENTITY e SYSTEM 'file:///etc/passwd'>]>&e;",
]


@pytest.mark.parametrize("name", HOSTILE)
def test_user_strings_are_escaped_and_round_trip(name: str) -> None:
    xml = render(request(name=name), TCG, [root()])
    dom = ET.fromstring(xml)
    assert dom.findtext("title") == name
    assert dom.findtext(f"metadata/{{{METADATA_NS}}}instance/{{{METADATA_NS}}}name") == name
    # The name added nothing: the same elements as for a plain name.
    plain = ET.fromstring(render(request(), TCG, [root()]))
    assert [el.tag for el in dom.iter()] == [el.tag for el in plain.iter()]
    assert "<!DOCTYPE" not in xml and "<!--" not in xml
