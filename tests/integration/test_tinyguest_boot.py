"""The tiny guest for real: build it from Debian packages (apt-get download) once per
module, then boot it under qemu TCG, from its disk with the config drive as an IDE cdrom,
and by direct kernel boot with the config drive as a read-only virtio disk.

The guests have no network device (``-nic none``), except one whose NIC is plugged into
nothing (so no DHCP lease comes) and which takes its address from the config drive's
network_data.json instead. Every qemu started here is killed in a ``finally``, by its own
process object.
"""

from __future__ import annotations

import asyncio
import io
import json
import re
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pycdlib
import pytest

from strato.domain.networks import Vif, VifSubnet
from strato.tinyguest import TinyGuest, build_tiny_guest
from strato.virt.configdrive import InstanceMetadata, write_config_drive

pytestmark = pytest.mark.slow

BOOT_DEADLINE = 60.0  # seconds from qemu's start to "strato-guest: ready"
UUID = "5f0c3b2e-8d4a-4c1e-9b7a-2e6f1d0c9a84"
MARKER = "user-data-ran-7c41"
USER_DATA = f"#!/bin/sh\necho {MARKER} on $(hostname)\n"


@pytest.fixture(scope="module")
def guest(tmp_path_factory: pytest.TempPathFactory) -> TinyGuest:
    return asyncio.run(build_tiny_guest(tmp_path_factory.mktemp("tinyguest")))


def make_config_drive(path: Path, *, hostname: str) -> Path:
    """An OpenStack config drive: ISO 9660 labelled config-2, Joliet and Rock Ridge."""
    files = {
        "meta_data.json": json.dumps({"uuid": UUID, "hostname": hostname, "name": hostname},
                                     indent=2).encode(),
        "user_data": USER_DATA.encode(),
    }
    iso = pycdlib.PyCdlib()
    iso.new(interchange_level=3, joliet=3, rock_ridge="1.09", vol_ident="config-2")
    iso.add_directory("/OPENSTAC", rr_name="openstack", joliet_path="/openstack")
    iso.add_directory("/OPENSTAC/LATEST", rr_name="latest", joliet_path="/openstack/latest")
    for index, (name, data) in enumerate(files.items()):
        iso.add_fp(io.BytesIO(data), len(data), f"/OPENSTAC/LATEST/FILE{index}.;1",
                   rr_name=name, joliet_path=f"/openstack/latest/{name}")
    iso.write(str(path))
    iso.close()
    return path


@dataclass
class RunningGuest:
    proc: subprocess.Popen[bytes]
    serial: Path
    stderr: Path
    started: float

    def lines(self) -> list[str]:
        text = self.serial.read_text(errors="replace") if self.serial.exists() else ""
        return [line.strip() for line in text.splitlines()]

    def wait_for(self, line: str, deadline: float = BOOT_DEADLINE) -> float:
        """Seconds from qemu's start until the console shows ``line``."""
        while time.monotonic() - self.started < deadline:
            if line in self.lines():
                return time.monotonic() - self.started
            if self.proc.poll() is not None:
                break
            time.sleep(0.1)
        pytest.fail(f"no {line!r} on the console after {deadline}s; console:\n"
                    + "\n".join(self.lines())
                    + f"\nqemu stderr:\n{self.stderr.read_text(errors='replace')}")


@contextmanager
def qemu(tmp: Path, *args: str) -> Iterator[RunningGuest]:
    """Start qemu (TCG, no NIC, serial to a file, monitor on stdin); kill it afterwards."""
    serial, stderr, monitor = tmp / "serial.log", tmp / "qemu.err", tmp / "monitor.out"
    argv = ["qemu-system-x86_64", "-machine", "pc,accel=tcg", "-m", "256", "-nodefaults",
            "-display", "none", "-nic", "none", "-serial", f"file:{serial}",
            "-monitor", "stdio", *args]
    with stderr.open("wb") as err, monitor.open("wb") as out:
        proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=out, stderr=err)
    try:
        yield RunningGuest(proc=proc, serial=serial, stderr=stderr, started=time.monotonic())
    finally:
        if proc.poll() is None:
            proc.kill()
        proc.wait()
        if proc.stdin:
            proc.stdin.close()


def overlay_of(disk: Path, tmp: Path) -> Path:
    """A throwaway qcow2 on top of the built disk, which stays untouched."""
    overlay = tmp / "overlay.qcow2"
    subprocess.run(["qemu-img", "create", "-q", "-f", "qcow2", "-F", "qcow2", "-b", str(disk),
                    str(overlay)], check=True)
    return overlay


def direct_boot_args(guest: TinyGuest) -> list[str]:
    return ["-kernel", str(guest.kernel), "-initrd", str(guest.initrd), "-append", guest.cmdline]


def assert_cloud_init_ran(running: RunningGuest, hostname: str) -> None:
    lines = running.lines()
    assert f"strato-guest: uuid={UUID} hostname={hostname}" in lines
    assert f"{MARKER} on {hostname}" in lines
    assert "strato-guest: user-data exit=0" in lines
    assert "strato-guest: eth0 absent" in lines
    assert not [line for line in lines if re.search(r"insmod .* failed", line)]


def test_disk_boot_with_ide_config_drive(guest: TinyGuest, tmp_path: Path) -> None:
    assert guest.disk.name == "tiny.qcow2" and guest.kernel_version.endswith("-cloud-amd64")
    iso = make_config_drive(tmp_path / "config.iso", hostname="tiny-disk")
    with qemu(tmp_path,
              "-drive", f"file={overlay_of(guest.disk, tmp_path)},if=virtio,format=qcow2",
              "-drive", f"file={iso},media=cdrom,if=ide") as running:
        seconds = running.wait_for(f"strato-guest: uuid={UUID} hostname=tiny-disk")
        print(f"disk boot: strato-guest line after {seconds:.1f}s")
        running.wait_for("strato-guest: ready")
        assert_cloud_init_ran(running, "tiny-disk")


def test_direct_kernel_boot_with_virtio_config_drive(guest: TinyGuest, tmp_path: Path) -> None:
    iso = make_config_drive(tmp_path / "config.iso", hostname="tiny-direct")
    with qemu(tmp_path, *direct_boot_args(guest),
              "-drive", f"file={iso},if=virtio,format=raw,readonly=on") as running:
        seconds = running.wait_for(f"strato-guest: uuid={UUID} hostname=tiny-direct")
        print(f"direct kernel boot: strato-guest line after {seconds:.1f}s")
        running.wait_for("strato-guest: ready")
        assert_cloud_init_ran(running, "tiny-direct")


def test_boot_without_config_drive(guest: TinyGuest, tmp_path: Path) -> None:
    with qemu(tmp_path, *direct_boot_args(guest)) as running:
        line = "strato-guest: uuid=unknown hostname=(none) (no config drive)"
        seconds = running.wait_for(line)
        print(f"direct kernel boot, no config drive: strato-guest line after {seconds:.1f}s")
        running.wait_for("strato-guest: ready")


def test_acpi_power_button_powers_off(guest: TinyGuest, tmp_path: Path) -> None:
    with qemu(tmp_path, *direct_boot_args(guest)) as running:
        running.wait_for("strato-guest: ready")
        assert running.proc.stdin is not None
        pressed = time.monotonic()
        running.proc.stdin.write(b"system_powerdown\n")
        running.proc.stdin.flush()
        assert running.proc.wait(timeout=20) == 0
        print(f"system_powerdown: qemu exited after {time.monotonic() - pressed:.1f}s")
        assert "strato-guest: powering off" in running.lines()


def test_static_network_from_network_data_before_user_data(guest: TinyGuest,
                                                          tmp_path: Path) -> None:
    """No DHCP server answers (the NIC has no peer), so init applies the static IPv4
    network strato's config drive gives the NIC's MAC, and only then runs user data,
    which sees the default route."""
    mac = "fa:16:3e:5a:7c:01"
    vif = Vif(port_id="6d0f4f0e-2b7a-4c55-9a1e-3c2b1a0f9e8d", network_id="net-1",
              network_name="private", mac_address=mac, subnets=(
                  VifSubnet(id="sub-1", cidr="10.20.30.0/24", ip_version=4,
                            gateway_ip="10.20.30.1", ips=("10.20.30.40",)),))
    iso = tmp_path / "config.iso"
    write_config_drive(InstanceMetadata(
        uuid=UUID, name="tiny-static", hostname="tiny-static", project_id="p", vifs=(vif,),
        user_data=b"#!/bin/sh\nip -4 route | sed 's/^/route: /'\n"), iso)
    with qemu(tmp_path, *direct_boot_args(guest),
              "-drive", f"file={iso},if=virtio,format=raw,readonly=on",
              "-device", f"virtio-net-pci,mac={mac}") as running:
        seconds = running.wait_for("strato-guest: ready")
        print(f"static network: ready after {seconds:.1f}s")
        lines = running.lines()
    static = lines.index("strato-guest: eth0 address=10.20.30.40/24 (static)")
    assert lines.index("strato-guest: eth0 no lease") < static
    route = lines.index("route: default via 10.20.30.1 dev eth0")
    assert static < route < lines.index("strato-guest: user-data exit=0")
