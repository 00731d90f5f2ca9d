"""The tiny guest builder's pure parts, without downloads or qemu: the newc cpio writer
(checked against GNU cpio), module load order from modules.dep and from .modinfo, the
boot configuration, and the guest's shell scripts."""

from __future__ import annotations

import gzip
import lzma
import os
import re
import shutil
import stat
import struct
import subprocess
from pathlib import Path

import pytest

from strato.domain.errors import Unavailable
from strato.domain.networks import HostRoute, Vif, VifSubnet
from strato.tinyguest import build
from strato.tinyguest.build import (
    CMDLINE,
    GUEST_MODULES,
    CpioEntry,
    KernelModule,
    builtin_modules,
    fat_size_kib,
    initramfs_entries,
    kernel_package_from_depends,
    load_order,
    modinfo,
    modules_from_dep_file,
    modules_from_modinfo,
    newc_archive,
    syslinux_config,
)
from strato.virt.configdrive import InstanceMetadata, metadata_tree

PACKAGE = Path(build.__file__).parent
needs_cpio = pytest.mark.skipif(shutil.which("cpio") is None, reason="cpio is not installed")


# --------------------------------------------------------------------------- cpio


def sample_entries() -> list[CpioEntry]:
    """Names and contents of every length modulo 4, so each padding case is exercised."""
    return [
        CpioEntry.directory("bin"),
        CpioEntry.directory("etc/acpi"[:3]),
        CpioEntry.directory("etc/acpi", perm=0o700),
        *(CpioEntry.file(f"etc/f{'x' * n}", bytes(range(n)) * 3) for n in range(6)),
        CpioEntry.file("bin/tool", b"#!/bin/sh\necho hi\n", perm=0o755),
        CpioEntry.file("empty", b""),
        CpioEntry.symlink("bin/sh", "tool"),
    ]


def test_newc_archive_is_aligned_and_ends_in_a_trailer() -> None:
    archive = newc_archive(sample_entries())
    assert archive.startswith(b"070701")
    assert len(archive) % 4 == 0
    assert b"TRAILER!!!\0" in archive[-124:]


@needs_cpio
def test_newc_archive_round_trips_through_gnu_cpio(tmp_path: Path) -> None:
    entries = sample_entries()
    out = tmp_path / "out"
    out.mkdir()
    subprocess.run(["cpio", "-idm", "--quiet", "--no-absolute-filenames"], cwd=out,
                   input=newc_archive(entries), check=True, capture_output=True)
    for entry in entries:
        path = out / entry.path
        st = path.lstat()
        assert stat.S_IFMT(st.st_mode) == stat.S_IFMT(entry.mode), entry.path
        if stat.S_ISLNK(entry.mode):
            assert os.readlink(path) == entry.data.decode()
            continue
        assert stat.S_IMODE(st.st_mode) == stat.S_IMODE(entry.mode), entry.path
        if stat.S_ISREG(entry.mode):
            assert path.read_bytes() == entry.data
    extracted = {str(p.relative_to(out)) for p in out.rglob("*")}
    assert extracted == {e.path for e in entries}


@needs_cpio
def test_device_nodes_need_no_root_to_archive() -> None:
    archive = newc_archive([CpioEntry.directory("dev"), CpioEntry.char_device("dev/console", 5, 1)])
    listing = subprocess.run(["cpio", "-itv", "--quiet"], input=archive, check=True,
                             capture_output=True).stdout.decode()
    console = next(line for line in listing.splitlines() if line.endswith("dev/console"))
    assert console.startswith("crw-------")
    assert "5,   1" in console


# --------------------------------------------------------------------------- modules

MODULES_DEP = """\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_pci.ko: kernel/drivers/virtio/virtio_ring.ko \
kernel/drivers/virtio/virtio_pci_modern_dev.ko kernel/drivers/virtio/virtio_pci_legacy_dev.ko \
kernel/drivers/virtio/virtio.ko
kernel/drivers/virtio/virtio_pci_legacy_dev.ko:
kernel/drivers/virtio/virtio_pci_modern_dev.ko:
kernel/drivers/block/virtio_blk.ko: kernel/drivers/virtio/virtio.ko \
kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/scsi/sr_mod.ko.xz: kernel/drivers/scsi/scsi_mod.ko kernel/drivers/cdrom/cdrom.ko \
kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_mod.ko: kernel/drivers/scsi/scsi_common.ko
kernel/drivers/scsi/scsi_common.ko:
kernel/drivers/cdrom/cdrom.ko:
kernel/drivers/md/dm-mod.ko:
"""


def names(modules: list[KernelModule]) -> list[str]:
    return [m.name for m in modules]


def test_modules_dep_is_parsed_into_names_paths_and_dependencies() -> None:
    modules = modules_from_dep_file(MODULES_DEP)
    assert modules["sr_mod"] == KernelModule(
        name="sr_mod", path="kernel/drivers/scsi/sr_mod.ko.xz",
        depends=("scsi_mod", "cdrom", "scsi_common"))
    assert modules["virtio_ring"].depends == ()
    assert "dm_mod" in modules  # a dash in a file name is an underscore in a module name


def test_load_order_puts_every_dependency_first_and_each_module_once() -> None:
    modules = modules_from_dep_file(MODULES_DEP)
    order = names(load_order(modules, ["virtio_pci", "virtio_blk", "sr_mod"]))
    assert sorted(order) == sorted(set(order))
    assert set(order) == {"virtio_ring", "virtio", "virtio_pci", "virtio_pci_legacy_dev",
                          "virtio_pci_modern_dev", "virtio_blk", "sr_mod", "scsi_mod",
                          "scsi_common", "cdrom"}
    for module in order:
        for dep in modules[module].depends:
            assert order.index(dep) < order.index(module), (dep, module)
    assert order[-1] == "sr_mod"


def test_load_order_skips_builtin_modules_and_refuses_missing_ones() -> None:
    modules = modules_from_dep_file(MODULES_DEP)
    builtin = builtin_modules("kernel/drivers/acpi/button.ko\nkernel/fs/isofs/isofs.ko\n")
    assert names(load_order(modules, ["button", "cdrom"], builtin)) == ["cdrom"]
    with pytest.raises(Unavailable, match="no module 'evdev'"):
        load_order(modules, ["evdev"], builtin)


def test_load_order_refuses_a_dependency_cycle() -> None:
    modules = {"a": KernelModule(name="a", path="a.ko", depends=("b",)),
               "b": KernelModule(name="b", path="b.ko", depends=("a",))}
    with pytest.raises(Unavailable, match="cycle: a -> b -> a"):
        load_order(modules, ["a"])


def fake_ko(info: dict[str, str]) -> bytes:
    """A minimal little-endian ELF64 file with a .modinfo and a .shstrtab section."""
    modinfo_data = b"".join(f"{k}={v}".encode() + b"\0" for k, v in info.items())
    shstrtab = b"\0.modinfo\0.shstrtab\0"
    data_at = 64
    strtab_at = data_at + len(modinfo_data)
    shoff = strtab_at + len(shstrtab)
    shoff += -shoff % 8
    header = bytearray(64)
    header[:6] = b"\x7fELF\x02\x01"
    struct.pack_into("<Q", header, 0x28, shoff)
    struct.pack_into("<HHH", header, 0x3A, 64, 3, 2)
    sections = [
        bytes(64),
        struct.pack("<IIQQQQ", 1, 1, 0, 0, data_at, len(modinfo_data)) + bytes(24),
        struct.pack("<IIQQQQ", 10, 3, 0, 0, strtab_at, len(shstrtab)) + bytes(24),
    ]
    body = bytes(header) + modinfo_data + shstrtab
    return body + bytes(shoff - len(body)) + b"".join(sections)


def test_modinfo_reads_the_modinfo_section() -> None:
    ko = fake_ko({"license": "GPL", "depends": "virtio,virtio_ring", "name": "virtio_blk"})
    assert modinfo(ko) == {"license": "GPL", "depends": "virtio,virtio_ring",
                           "name": "virtio_blk"}
    with pytest.raises(ValueError, match="ELF"):
        modinfo(b"not an elf file at all" * 4)


def test_modules_without_modules_dep_are_resolved_from_their_modinfo(tmp_path: Path) -> None:
    """Debian's kernel package has no modules.dep; the .ko files say what they need."""
    kos = {
        "kernel/a/virtio_ring.ko": ({"depends": ""}, False),
        "kernel/a/virtio.ko": ({"depends": "virtio_ring"}, False),
        "kernel/b/virtio_blk.ko.xz": ({"depends": "virtio,virtio_ring"}, True),
        "kernel/c/unrelated.ko": ({"depends": "virtio"}, False),
    }
    for rel, (info, xz) in kos.items():
        path = tmp_path / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(lzma.compress(fake_ko(info)) if xz else fake_ko(info))
    modules = modules_from_modinfo(tmp_path, ["virtio_blk"])
    assert set(modules) == {"virtio_ring", "virtio", "virtio_blk"}
    assert modules["virtio_blk"].path == "kernel/b/virtio_blk.ko.xz"
    assert names(load_order(modules, ["virtio_blk"])) == ["virtio_ring", "virtio", "virtio_blk"]
    assert build.read_module(tmp_path / "kernel/b/virtio_blk.ko.xz").startswith(b"\x7fELF")


# --------------------------------------------------------------------------- guest files


def test_initramfs_holds_init_busybox_console_and_ordered_modules() -> None:
    entries = {e.path: e for e in initramfs_entries(
        busybox=b"BUSYBOX", modules=[("virtio_ring", b"RING"), ("virtio", b"VIRTIO")])}
    assert entries["init"].data == (PACKAGE / "init.sh").read_bytes()
    assert stat.S_IMODE(entries["init"].mode) == 0o755
    assert entries["bin/busybox"].data == b"BUSYBOX"
    assert entries["bin/sh"].data == b"busybox" and stat.S_ISLNK(entries["bin/sh"].mode)
    assert stat.S_ISCHR(entries["dev/console"].mode) and entries["dev/console"].rdev == (5, 1)
    assert entries["etc/modules.order"].data == (
        b"/lib/modules/virtio_ring.ko\n/lib/modules/virtio.ko\n")
    assert entries["lib/modules/virtio.ko"].data == b"VIRTIO"
    assert entries["etc/acpid.conf"].data == b"PWRF power\n"
    assert b"poweroff -f" in entries["etc/acpi/power"].data
    for path in entries:  # every parent directory comes before its members
        parent = path.rpartition("/")[0]
        assert not parent or parent in entries


@needs_cpio
def test_initramfs_file_is_a_gzip_newc_cpio_with_the_guest_modules(tmp_path: Path) -> None:
    """A fake extracted kernel package: modules.dep names every guest module (each
    depending on a shared "common"), and modules.builtin says "evdev" is built in."""
    root, moddir = tmp_path / "root", tmp_path / "root/lib/modules/6.1.0-1-cloud-amd64"
    (root / "bin").mkdir(parents=True)
    (root / "bin/busybox").write_bytes(b"BUSYBOX")
    (moddir / "kernel").mkdir(parents=True)
    wanted = [m for m in GUEST_MODULES if m != "evdev"]
    dep_lines = ["kernel/common.ko:"] + [f"kernel/{m}.ko: kernel/common.ko" for m in wanted]
    (moddir / "modules.dep").write_text("\n".join(dep_lines) + "\n")
    (moddir / "modules.builtin").write_text("kernel/drivers/input/evdev.ko\n")
    for name in ["common", *wanted]:
        (moddir / f"kernel/{name}.ko").write_bytes(name.encode())
    target = tmp_path / "initrd.img"
    build._write_initramfs(root, moddir, target)
    listing = subprocess.run(["cpio", "-it", "--quiet"], input=gzip.decompress(
        target.read_bytes()), check=True, capture_output=True).stdout.decode().split()
    assert {"init", "bin/busybox", "dev/console", "etc/modules.order"} <= set(listing)
    assert [p for p in listing if p.startswith("lib/modules/")] == [
        f"lib/modules/{m}.ko" for m in ["common", *wanted]]


def test_guest_modules_cover_disks_cdrom_network_and_power_button() -> None:
    assert {"virtio_pci", "virtio_blk", "virtio_net", "ata_piix", "sr_mod", "isofs",
            "button", "evdev"} <= set(GUEST_MODULES)


def test_kernel_cmdline_is_quiet_with_the_serial_console_last() -> None:
    assert CMDLINE.split()[-1] == "console=ttyS0"
    assert "quiet" in CMDLINE.split()


def test_syslinux_config_boots_the_one_entry_at_once() -> None:
    config = syslinux_config(CMDLINE).splitlines()
    assert config[:3] == ["DEFAULT linux", "PROMPT 0", "TIMEOUT 0"]
    assert [line.strip() for line in config[3:]] == [
        "LABEL linux", f"KERNEL /{build.BOOT_KERNEL}", f"INITRD /{build.BOOT_INITRD}",
        f"APPEND {CMDLINE}"]


def test_fat_size_has_a_floor_and_grows_with_the_payload() -> None:
    assert fat_size_kib(0) == 32 * 1024
    assert fat_size_kib(40 * 1024 * 1024) >= 44 * 1024
    assert fat_size_kib(40 * 1024 * 1024) % 1024 == 0


def test_kernel_package_is_read_from_apt_cache_depends() -> None:
    output = ("linux-image-cloud-amd64\n"
              "  Depends: linux-image-6.1.0-56-cloud-amd64\n")
    assert kernel_package_from_depends(output) == "linux-image-6.1.0-56-cloud-amd64"
    with pytest.raises(Unavailable, match="apt-get update"):
        kernel_package_from_depends("linux-image-cloud-amd64\n")


async def test_a_missing_or_failing_tool_is_unavailable() -> None:
    with pytest.raises(Unavailable, match="not installed"):
        await build._run("strato-no-such-tool-here")
    with pytest.raises(Unavailable, match=r"`sh -c 'echo oops >&2; exit 3'` failed .* oops"):
        await build._run("sh", "-c", "echo oops >&2; exit 3")


@pytest.mark.parametrize("script", ["init.sh", "udhcpc.sh"])
def test_guest_scripts_are_valid_shell(script: str) -> None:
    subprocess.run(["sh", "-n", str(PACKAGE / script)], check=True)


def test_udhcpc_script_applies_the_lease_and_reports_it(tmp_path: Path) -> None:
    """Runs the script on the build host against a fake ``ip`` that only logs."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    ip_log = tmp_path / "ip.log"
    fake_ip = bin_dir / "ip"
    fake_ip.write_text(f'#!/bin/sh\necho "$*" >>{ip_log}\n')
    fake_ip.chmod(0o755)
    console, resolv = tmp_path / "console", tmp_path / "resolv.conf"
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "interface": "eth0", "ip": "10.0.0.5",
           "mask": "24", "router": "10.0.0.1", "dns": "10.0.0.2 10.0.0.3",
           "TINYGUEST_CONSOLE": str(console), "TINYGUEST_RESOLV_CONF": str(resolv)}
    subprocess.run(["sh", str(PACKAGE / "udhcpc.sh"), "bound"], env=env, check=True)
    assert console.read_text() == "strato-guest: eth0 address=10.0.0.5/24\n"
    assert ip_log.read_text().splitlines() == [
        "-4 addr flush dev eth0", "-4 addr add 10.0.0.5/24 dev eth0",
        "-4 route add default via 10.0.0.1 dev eth0"]
    assert resolv.read_text() == "nameserver 10.0.0.2\nnameserver 10.0.0.3\n"


# ------------------------------------------------------------- static network (init.sh)
BUSYBOX = shutil.which("busybox")
SHELLS = ["host", pytest.param("busybox", marks=pytest.mark.skipif(
    BUSYBOX is None, reason="busybox is not installed"))]
MAC_A, MAC_B = "fa:16:3e:00:00:0a", "fa:16:3e:00:00:0b"


def init_functions(*wanted: str) -> str:
    """The named shell functions of init.sh, verbatim (each ends at a '}' in column 0)."""
    text = (PACKAGE / "init.sh").read_text()
    found = []
    for name in wanted:
        match = re.search(rf"^{name}\(\) {{\n.*?^}}\n", text, re.MULTILINE | re.DOTALL)
        assert match is not None, name
        found.append(match.group(0))
    return "".join(found)


def vif(port_id: str, mac: str, *subnets: VifSubnet) -> Vif:
    return Vif(port_id=port_id, network_id=f"net-{port_id}", network_name="n",
               mac_address=mac, mtu=1450, subnets=subnets)


def v4(cidr: str, ip: str, gateway: str | None, *dns: str) -> VifSubnet:
    return VifSubnet(id=f"s-{ip}", cidr=cidr, ip_version=4, gateway_ip=gateway, ips=(ip,),
                     dns_nameservers=dns,
                     host_routes=(HostRoute(destination="192.168.0.0/16", nexthop=ip),))


V6 = VifSubnet(id="s6", cidr="2001:db8::/64", ip_version=6, gateway_ip="2001:db8::1",
               ips=("2001:db8::5",), dns_nameservers=("2001:db8::53",))


class GuestShell:
    """Runs init.sh's functions on the build host, with a PATH holding only awk (the
    host's or busybox's) and a fake ``ip`` that logs, so nothing touches the host's
    network."""

    def __init__(self, tmp: Path, shell: str) -> None:
        self.tmp, self.bin = tmp, tmp / "bin"
        self.bin.mkdir()
        self.ip_log, self.resolv = tmp / "ip.log", tmp / "resolv.conf"
        awk = BUSYBOX if shell == "busybox" else shutil.which("awk")
        assert awk is not None
        (self.bin / "awk").symlink_to(awk)
        fake_ip = self.bin / "ip"
        fake_ip.write_text(f'#!/bin/sh\necho "$*" >>{self.ip_log}\n')
        fake_ip.chmod(0o755)
        self.argv = [BUSYBOX, "sh"] if shell == "busybox" else ["/bin/sh"]

    def run(self, vifs: tuple[Vif, ...], call: str) -> subprocess.CompletedProcess[str]:
        data = self.tmp / "network_data.json"
        data.write_bytes(metadata_tree(InstanceMetadata(
            uuid="u", name="n", hostname="n", project_id="p",
            vifs=vifs))["openstack/latest/network_data.json"])
        script = init_functions("say", "network_data_ipv4", "configure_static") + call
        env = {"PATH": str(self.bin), "TINYGUEST_RESOLV_CONF": str(self.resolv),
               "DATA": str(data)}
        return subprocess.run([*self.argv, "-c", script], env=env, capture_output=True,
                              text=True, check=False, timeout=30)

    def ip_calls(self) -> list[str]:
        return self.ip_log.read_text().splitlines() if self.ip_log.exists() else []


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize(("mac", "expected"), [
    (MAC_B, "10.0.1.7 20 10.0.0.1 10.0.0.53 10.0.0.54"),  # the NIC whose MAC matches
    (MAC_B.upper(), "10.0.1.7 20 10.0.0.1 10.0.0.53 10.0.0.54"),
    ("fa:16:3e:99:99:99", "172.16.5.9 30 -"),  # no match: the first link
])
def test_network_data_ipv4_reads_the_drive_strato_writes(
        shell: str, mac: str, expected: str, tmp_path: Path) -> None:
    vifs = (vif("aaaaaaaa-1111", MAC_A, V6, v4("172.16.5.8/30", "172.16.5.9", None)),
            vif("bbbbbbbb-2222", MAC_B, V6, v4("10.0.0.0/20", "10.0.1.7", "10.0.0.1",
                                              "10.0.0.53", "10.0.0.54")))
    result = GuestShell(tmp_path, shell).run(vifs, f'network_data_ipv4 "$DATA" "{mac}"')
    assert (result.returncode, result.stdout, result.stderr) == (0, expected + "\n", "")


@pytest.mark.parametrize("shell", SHELLS)
@pytest.mark.parametrize("vifs", [(), (vif("cccccccc-3333", MAC_A, V6),),
                                  (vif("dddddddd-4444", MAC_A),)],
                         ids=["no-vifs", "ipv6-only", "no-subnets"])
def test_no_static_ipv4_means_nothing_is_configured(
        shell: str, vifs: tuple[Vif, ...], tmp_path: Path) -> None:
    guest = GuestShell(tmp_path, shell)
    result = guest.run(vifs, f'network_data_ipv4 "$DATA" {MAC_A}; '
                             f'configure_static "$DATA" {MAC_A} || echo failed')
    assert (result.stdout, result.stderr) == ("failed\n", "")
    assert guest.ip_calls() == []


@pytest.mark.parametrize("shell", SHELLS)
def test_configure_static_applies_address_route_and_dns(shell: str, tmp_path: Path) -> None:
    guest = GuestShell(tmp_path, shell)
    vifs = (vif("eeeeeeee-5555", MAC_A, v4("10.1.2.0/24", "10.1.2.30", "10.1.2.1",
                                          "10.1.2.2")),)
    result = guest.run(vifs, f'configure_static "$DATA" {MAC_A}')
    assert (result.returncode, result.stderr) == (0, "")
    assert result.stdout == "strato-guest: eth0 address=10.1.2.30/24 (static)\n"
    assert guest.ip_calls() == ["-4 addr flush dev eth0", "-4 addr add 10.1.2.30/24 dev eth0",
                                "-4 route add default via 10.1.2.1 dev eth0"]
    assert guest.resolv.read_text() == "nameserver 10.1.2.2\n"


@pytest.mark.parametrize("shell", SHELLS)
def test_configure_static_without_gateway_or_dns(shell: str, tmp_path: Path) -> None:
    guest = GuestShell(tmp_path, shell)
    vifs = (vif("ffffffff-6666", MAC_A, v4("10.9.0.0/16", "10.9.8.7", None)),)
    result = guest.run(vifs, f'configure_static "$DATA" {MAC_A}')
    assert result.stdout == "strato-guest: eth0 address=10.9.8.7/16 (static)\n"
    assert guest.ip_calls() == ["-4 addr flush dev eth0", "-4 addr add 10.9.8.7/16 dev eth0"]
    assert not guest.resolv.exists()


def test_init_configures_the_network_before_user_data() -> None:
    main = (PACKAGE / "init.sh").read_text().rpartition("\nload_modules\n")[2]
    with_drive = main.partition("else")[0]
    assert with_drive.index("configure_network") < with_drive.index("run_user_data")
