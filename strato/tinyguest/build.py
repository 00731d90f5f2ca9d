"""Build a tiny bootable Linux guest from Debian packages, without root or a loop device.

A real cloud image is hundreds of megabytes and boots for a minute under TCG; strato's
end-to-end tests need a guest that boots in seconds and still acts like a cloud guest:
it reads the config drive, runs user data, asks for DHCP and honours the ACPI power
button. So the guest is a Debian cloud kernel plus an initramfs holding busybox, a
few kernel modules and ``init.sh`` (a minimal cloud-init), and nothing else.

Steps, each an ordinary unprivileged tool or plain Python:

1. ``apt-get download`` ``busybox-static`` and the kernel package that
   ``linux-image-cloud-amd64`` depends on (into a cache directory, reused), then
   ``dpkg-deb -x`` them into a scratch root.
2. The initramfs is a gzip'd newc cpio written here (:func:`newc_archive`), so device
   nodes such as ``/dev/console`` need no root. The kernel modules the guest needs are
   loaded by ``/init`` in the order :func:`load_order` computes from ``modules.dep``,
   or, since the Debian package ships without one (``depmod`` runs at install time),
   from each module's own ``.modinfo`` ``depends=`` field.
3. The boot disk is a FAT file system made by ``mkfs.vfat -C`` on a plain file, filled
   with ``mcopy``, made bootable by the mtools-based ``syslinux --install`` and
   converted to qcow2. It has no partition table: SeaBIOS boots the FAT boot sector
   ("superfloppy") from a virtio or IDE disk.

Every failing or missing tool raises :class:`~strato.domain.errors.Unavailable` naming
the command and its stderr.
"""

from __future__ import annotations

import asyncio
import gzip
import lzma
import os
import re
import shlex
import shutil
import stat
import struct
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from strato.domain.errors import Unavailable
from strato.process import run

__all__ = [
    "CMDLINE", "GUEST_MODULES", "CpioEntry", "KernelModule", "TinyGuest", "build_tiny_guest",
    "builtin_modules", "fat_size_kib", "initramfs_entries", "kernel_package_from_depends",
    "load_order", "modinfo", "modules_from_dep_file", "modules_from_modinfo", "newc_archive",
    "syslinux_config",
]

KERNEL_META_PACKAGE = "linux-image-cloud-amd64"
BUSYBOX_PACKAGE = "busybox-static"

#: The kernel command line, for syslinux and for direct kernel boot alike. ``quiet``
#: because every serial line costs time under TCG; ``console=ttyS0`` last, because the
#: last ``console=`` becomes ``/dev/console``, where ``/init`` reports.
CMDLINE = "quiet console=ttyS0"

#: What the guest needs that the Debian cloud kernel builds as modules: virtio disks and
#: NICs, the IDE cdrom of machine type ``pc`` (a config drive), ISO 9660, and the ACPI
#: power button with evdev (acpid reads ``/dev/input/event*``). Dependencies are added.
GUEST_MODULES = (
    "virtio_pci", "virtio_blk", "virtio_net",
    "ata_piix", "sr_mod", "isofs",
    "evdev", "button",
)

#: busybox acpid maps the power button to the event "PWRF"; this runs /etc/acpi/power.
ACPID_CONF = "PWRF power\n"
ACPI_POWER_SCRIPT = """#!/bin/sh
# Run by acpid (whose own output goes to its log file) on the ACPI power button.
echo "strato-guest: powering off" >/dev/console
sync
poweroff -f
"""

#: File names on the boot disk's FAT (8.3, as syslinux reads them).
BOOT_KERNEL = "VMLINUZ"
BOOT_INITRD = "INITRD.IMG"

_FAT_MIN_BYTES = 32 * 1024 * 1024
_MIB = 1024 * 1024


@dataclass(frozen=True, slots=True, kw_only=True)
class TinyGuest:
    """The built guest: one boot disk, and its kernel and initramfs for direct boot."""

    disk: Path  # bootable qcow2 (FAT fs + syslinux + kernel + initramfs)
    kernel: Path  # the same kernel as a separate file (uploaded as an 'aki' image)
    initrd: Path  # the same initramfs (uploaded as an 'ari' image)
    kernel_version: str  # e.g. "6.1.0-56-cloud-amd64"
    cmdline: str  # kernel command line for direct kernel boot


# --------------------------------------------------------------------------- cpio (newc)


@dataclass(frozen=True, slots=True, kw_only=True)
class CpioEntry:
    """One member of a newc archive; ``path`` is relative ("bin/sh", not "/bin/sh")."""

    path: str
    mode: int  # st_mode: file type bits and permissions
    data: bytes = b""  # file content, or a symlink's target
    rdev: tuple[int, int] = (0, 0)  # major, minor of a device node

    @classmethod
    def directory(cls, path: str, perm: int = 0o755) -> CpioEntry:
        return cls(path=path, mode=stat.S_IFDIR | perm)

    @classmethod
    def file(cls, path: str, data: bytes, perm: int = 0o644) -> CpioEntry:
        return cls(path=path, mode=stat.S_IFREG | perm, data=data)

    @classmethod
    def symlink(cls, path: str, target: str) -> CpioEntry:
        return cls(path=path, mode=stat.S_IFLNK | 0o777, data=target.encode())

    @classmethod
    def char_device(cls, path: str, major: int, minor: int, perm: int = 0o600) -> CpioEntry:
        return cls(path=path, mode=stat.S_IFCHR | perm, rdev=(major, minor))


def _pad4(length: int) -> bytes:
    return b"\0" * (-length % 4)


def _newc_member(ino: int, entry: CpioEntry | None, name: str) -> bytes:
    """One header (110 ASCII bytes: magic and 13 hex fields), name and data, each padded
    to 4 bytes as the kernel's initramfs unpacker expects. ``None`` is the trailer."""
    mode = entry.mode if entry else 0
    data = entry.data if entry else b""
    rdev = entry.rdev if entry else (0, 0)
    nlink = 2 if stat.S_ISDIR(mode) else 1
    encoded_name = name.encode() + b"\0"
    fields = (ino, mode, 0, 0, nlink, 0, len(data), 0, 0, rdev[0], rdev[1],
              len(encoded_name), 0)
    header = b"070701" + b"".join(b"%08X" % value for value in fields)
    head = header + encoded_name
    return head + _pad4(len(head)) + data + _pad4(len(data))


def newc_archive(entries: Iterable[CpioEntry]) -> bytes:
    """A complete newc cpio archive (what ``cpio -H newc -o`` writes), ending in the
    ``TRAILER!!!`` member. Owners are root and times zero, so builds are reproducible;
    every member gets its own inode number, so nothing reads as a hard link."""
    members = [_newc_member(ino, entry, entry.path.lstrip("/"))
               for ino, entry in enumerate(entries, start=1)]
    members.append(_newc_member(0, None, "TRAILER!!!"))
    return b"".join(members)


# --------------------------------------------------------------------------- kernel modules


@dataclass(frozen=True, slots=True, kw_only=True)
class KernelModule:
    """A module as ``modules.dep`` describes it: its path there and what it needs."""

    name: str  # "virtio_pci" (dashes in file names read as underscores, as the kernel does)
    path: str  # relative to /lib/modules/<version>, e.g. "kernel/drivers/virtio/virtio_pci.ko"
    depends: tuple[str, ...] = ()


_MODULE_SUFFIXES = (".ko", ".ko.xz", ".ko.gz")


def module_name(path: str) -> str:
    """``kernel/fs/isofs/isofs.ko.xz`` -> ``isofs``."""
    base = path.rsplit("/", 1)[-1]
    for suffix in _MODULE_SUFFIXES:
        if base.endswith(suffix):
            base = base[: -len(suffix)]
            break
    return base.replace("-", "_")


def modules_from_dep_file(text: str) -> dict[str, KernelModule]:
    """Parse ``modules.dep``: lines of ``path: dependency-path ...``."""
    modules: dict[str, KernelModule] = {}
    for line in text.splitlines():
        path, sep, deps = line.partition(":")
        if not sep or line.lstrip().startswith("#"):
            continue
        name = module_name(path.strip())
        modules[name] = KernelModule(
            name=name, path=path.strip(), depends=tuple(module_name(d) for d in deps.split()))
    return modules


def builtin_modules(text: str) -> frozenset[str]:
    """The names in ``modules.builtin``: asked for, these need no loading."""
    return frozenset(module_name(line.strip()) for line in text.splitlines() if line.strip())


def _elf_section(elf: bytes, wanted: str) -> bytes | None:
    """The content of section ``wanted`` of a little-endian ELF64 file (a .ko)."""
    if elf[:4] != b"\x7fELF" or elf[4] != 2 or elf[5] != 1:
        raise ValueError("not a little-endian 64-bit ELF file")
    (shoff,) = struct.unpack_from("<Q", elf, 0x28)
    shentsize, shnum, shstrndx = struct.unpack_from("<HHH", elf, 0x3A)

    def section(index: int) -> tuple[int, int, int]:
        name, _type, _flags, _addr, offset, size = struct.unpack_from(
            "<IIQQQQ", elf, shoff + index * shentsize)
        return name, offset, size

    _, names_at, names_size = section(shstrndx)
    names = elf[names_at:names_at + names_size]
    for index in range(shnum):
        name_at, offset, size = section(index)
        if names[name_at:].split(b"\0", 1)[0] == wanted.encode():
            return elf[offset:offset + size]
    return None


def modinfo(ko: bytes) -> dict[str, str]:
    """A module's ``.modinfo`` (``name=``, ``depends=``, ...), as ``modinfo`` shows it."""
    section = _elf_section(ko, ".modinfo") or b""
    pairs = (item.decode(errors="replace").partition("=") for item in section.split(b"\0"))
    return {key: value for key, sep, value in pairs if sep}


def read_module(path: Path) -> bytes:
    """A module file's ELF bytes; ``.ko.xz`` and ``.ko.gz`` are decompressed, so the
    guest's busybox insmod only ever sees plain modules."""
    data = path.read_bytes()
    if path.name.endswith(".xz"):
        return lzma.decompress(data)
    if path.name.endswith(".gz"):
        return gzip.decompress(data)
    return data


def modules_from_modinfo(moddir: Path, wanted: Iterable[str]) -> dict[str, KernelModule]:
    """What ``modules.dep`` would say about ``wanted`` and everything they need, read from
    the modules' own ``depends=`` fields: Debian's kernel package ships no modules.dep
    (its postinst runs depmod), and depmod itself may not be installed here."""
    files = {module_name(str(p)): p for p in moddir.rglob("*")
             if p.name.endswith(_MODULE_SUFFIXES)}
    found: dict[str, KernelModule] = {}
    todo = list(wanted)
    while todo:
        name = todo.pop()
        if name in found or name not in files:
            continue  # load_order reports the missing ones
        try:
            depends = modinfo(read_module(files[name])).get("depends", "")
        except (ValueError, struct.error, lzma.LZMAError, OSError) as exc:
            raise Unavailable(f"cannot read kernel module {files[name]}: {exc}") from exc
        deps = tuple(d for d in depends.split(",") if d)
        found[name] = KernelModule(
            name=name, path=str(files[name].relative_to(moddir)), depends=deps)
        todo.extend(deps)
    return found


def load_order(modules: Mapping[str, KernelModule], wanted: Iterable[str],
               builtin: frozenset[str] = frozenset()) -> list[KernelModule]:
    """``wanted`` and their dependencies, each after everything it depends on (a
    depth-first post-order), each once; built-in modules are skipped. insmod, unlike
    modprobe, loads no dependencies, so this order is what makes it work."""
    order: list[KernelModule] = []
    done: set[str] = set()

    def visit(name: str, chain: tuple[str, ...]) -> None:
        if name in done:
            return
        if name in chain:
            raise Unavailable(f"kernel module dependency cycle: {' -> '.join(chain + (name,))}")
        module = modules.get(name)
        if module is None:
            if name in builtin:
                return
            raise Unavailable(f"the kernel has no module {name!r} (needed by the tiny guest)")
        for dep in module.depends:
            visit(dep, chain + (name,))
        done.add(name)
        order.append(module)

    for name in wanted:
        visit(name, ())
    return order


# --------------------------------------------------------------------------- guest files


def _package_text(name: str) -> bytes:
    return resources.files("strato.tinyguest").joinpath(name).read_bytes()


def initramfs_entries(*, busybox: bytes, modules: Sequence[tuple[str, bytes]]) -> list[CpioEntry]:
    """Everything in the guest's initramfs. ``modules`` are (name, ELF bytes) in load
    order; ``/init`` insmods them in the order of ``/etc/modules.order``. Only
    ``/bin/sh`` links to busybox here: ``/init`` installs the other applets itself."""
    dirs = ("bin", "dev", "proc", "sys", "mnt", "tmp", "etc", "etc/acpi", "lib",
            "lib/modules")
    order = "".join(f"/lib/modules/{name}.ko\n" for name, _ in modules)
    return [
        *(CpioEntry.directory(d) for d in dirs),
        # The kernel opens /dev/console for /init before anything can mount devtmpfs.
        CpioEntry.char_device("dev/console", 5, 1),
        CpioEntry.char_device("dev/null", 1, 3, perm=0o666),
        CpioEntry.file("bin/busybox", busybox, perm=0o755),
        CpioEntry.symlink("bin/sh", "busybox"),
        CpioEntry.file("init", _package_text("init.sh"), perm=0o755),
        CpioEntry.file("etc/udhcpc.sh", _package_text("udhcpc.sh"), perm=0o755),
        CpioEntry.file("etc/acpid.conf", ACPID_CONF.encode()),
        CpioEntry.file("etc/acpi/power", ACPI_POWER_SCRIPT.encode(), perm=0o755),
        CpioEntry.file("etc/modules.order", order.encode()),
        *(CpioEntry.file(f"lib/modules/{name}.ko", data) for name, data in modules),
    ]


def syslinux_config(cmdline: str) -> str:
    """The boot disk's syslinux.cfg: boot the one entry at once, no prompt."""
    return (
        "DEFAULT linux\n"
        "PROMPT 0\n"
        "TIMEOUT 0\n"
        "LABEL linux\n"
        f"  KERNEL /{BOOT_KERNEL}\n"
        f"  INITRD /{BOOT_INITRD}\n"
        f"  APPEND {cmdline}\n"
    )


def fat_size_kib(payload_bytes: int) -> int:
    """Room for the payload plus FAT overhead and slack, at least 32 MiB."""
    wanted = max(_FAT_MIN_BYTES, payload_bytes * 11 // 10 + 4 * _MIB)
    return -(-wanted // _MIB) * 1024


# --------------------------------------------------------------------------- tools


def _tool_env() -> dict[str, str]:
    """C locale (apt-cache's output is parsed); mtools must not refuse a superfloppy
    over its geometry."""
    return {**os.environ, "LC_ALL": "C", "MTOOLS_SKIP_CHECK": "1"}


async def _run(*argv: str, cwd: Path | None = None) -> str:
    """Run one tool, return its stdout; any failure is :class:`Unavailable`."""
    command = shlex.join(argv)
    try:
        done = await run(*argv, cwd=cwd, env=_tool_env())
    except FileNotFoundError as exc:
        raise Unavailable(f"building the tiny guest needs {argv[0]!r}, which is not "
                          f"installed (running `{command}`)") from exc
    if done.returncode != 0:
        raise Unavailable(f"`{command}` failed with exit status {done.returncode}: "
                          f"{done.stderr.decode(errors='replace').strip()}")
    return done.stdout.decode(errors="replace")


def kernel_package_from_depends(output: str) -> str:
    """The real kernel package in ``apt-cache depends linux-image-cloud-amd64`` output
    (``  Depends: linux-image-6.1.0-56-cloud-amd64``)."""
    for match in re.finditer(r"^\s*\|?Depends:\s*(linux-image-\S+)\s*$", output, re.M):
        if match.group(1) != KERNEL_META_PACKAGE:
            return match.group(1)
    raise Unavailable(f"`apt-cache depends {KERNEL_META_PACKAGE}` names no kernel package "
                      f"(run `apt-get update`?): {output.strip()!r}")


def _cached_deb(cache: Path, package: str) -> Path | None:
    """A .deb of ``package`` in ``cache``: any version serves the tiny guest."""
    debs = sorted(cache.glob(f"{package}_*.deb"))
    return debs[-1] if debs else None


async def _fetch_deb(package: str, cache: Path) -> Path:
    """The package's .deb from the cache, else ``apt-get download``-ed into it. The
    download lands in a scratch directory first, so an interrupted one is never reused."""
    cached = await asyncio.to_thread(_cached_deb, cache, package)
    if cached is not None:
        return cached
    scratch = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".download-", dir=cache))
    try:
        await _run("apt-get", "download", package, cwd=scratch)
        downloaded = await asyncio.to_thread(_cached_deb, scratch, package)
        if downloaded is None:
            raise Unavailable(f"`apt-get download {package}` wrote no .deb")
        return await asyncio.to_thread(downloaded.replace, cache / downloaded.name)
    finally:
        await asyncio.to_thread(shutil.rmtree, scratch, True)


# --------------------------------------------------------------------------- assembly


def _kernel_files(root: Path, version: str) -> tuple[Path, Path]:
    """The extracted kernel image and modules directory for ``version``."""
    vmlinuz = root / "boot" / f"vmlinuz-{version}"
    for moddir in (root / "lib" / "modules" / version, root / "usr/lib/modules" / version):
        if vmlinuz.is_file() and moddir.is_dir():
            return vmlinuz, moddir
    raise Unavailable(f"the kernel package holds no vmlinuz or modules for {version}")


def _guest_modules(moddir: Path) -> list[tuple[str, bytes]]:
    """GUEST_MODULES and their dependencies as (name, ELF bytes), in load order."""
    dep_file = moddir / "modules.dep"
    if dep_file.is_file():
        modules = modules_from_dep_file(dep_file.read_text())
    else:
        modules = modules_from_modinfo(moddir, GUEST_MODULES)
    builtin_file = moddir / "modules.builtin"
    builtin = builtin_modules(builtin_file.read_text()) if builtin_file.is_file() else frozenset()
    return [(m.name, read_module(moddir / m.path))
            for m in load_order(modules, GUEST_MODULES, builtin)]


def _write_initramfs(root: Path, moddir: Path, target: Path) -> None:
    entries = initramfs_entries(busybox=(root / "bin" / "busybox").read_bytes(),
                                modules=_guest_modules(moddir))
    target.write_bytes(gzip.compress(newc_archive(entries), compresslevel=6, mtime=0))


def _write_syslinux_config(config: Path, vmlinuz: Path, initrd: Path) -> int:
    """Write syslinux.cfg; return the FAT size (KiB) that holds it all."""
    config.write_text(syslinux_config(CMDLINE))
    return fat_size_kib(vmlinuz.stat().st_size + initrd.stat().st_size)


def _make_dirs(output_dir: Path, cache_dir: Path | None) -> tuple[Path, Path]:
    """The absolute output and cache directories, created."""
    output_dir = output_dir.resolve()
    cache = (cache_dir or output_dir / "debs").resolve()
    output_dir.mkdir(parents=True, exist_ok=True)
    cache.mkdir(parents=True, exist_ok=True)
    return output_dir, cache


async def _make_boot_disk(work: Path, vmlinuz: Path, initrd: Path, target: Path) -> None:
    """FAT superfloppy with syslinux, kernel and initramfs, converted to qcow2."""
    image = work / "boot.img"
    config = work / "syslinux.cfg"
    size = await asyncio.to_thread(_write_syslinux_config, config, vmlinuz, initrd)
    await _run("mkfs.vfat", "-C", "-n", "TINYGUEST", str(image), str(size))
    for source, name in ((vmlinuz, BOOT_KERNEL), (initrd, BOOT_INITRD),
                         (config, "SYSLINUX.CFG")):
        await _run("mcopy", "-i", str(image), str(source), f"::{name}")
    await _run("syslinux", "--install", str(image))
    await _run("qemu-img", "convert", "-f", "raw", "-O", "qcow2", str(image), str(target))


async def build_tiny_guest(output_dir: Path, *, cache_dir: Path | None = None) -> TinyGuest:
    """Build (or rebuild) the tiny guest into ``output_dir``: ``tiny.qcow2``,
    ``tiny-vmlinuz`` and ``tiny-initrd.img``. Downloads go to ``cache_dir`` (default
    ``output_dir/debs``) and are reused. Outputs are written aside and renamed into
    place, so a concurrent reader never sees half a file."""
    output_dir, cache = await asyncio.to_thread(_make_dirs, output_dir, cache_dir)
    kernel_package = kernel_package_from_depends(
        await _run("apt-cache", "depends", KERNEL_META_PACKAGE))
    version = kernel_package.removeprefix("linux-image-")
    debs = [await _fetch_deb(p, cache) for p in (BUSYBOX_PACKAGE, kernel_package)]

    work = Path(await asyncio.to_thread(tempfile.mkdtemp, prefix=".tinyguest-", dir=output_dir))
    try:
        root = work / "root"
        for deb in debs:
            await _run("dpkg-deb", "-x", str(deb), str(root))
        vmlinuz, moddir = await asyncio.to_thread(_kernel_files, root, version)
        staged = {"kernel": work / "tiny-vmlinuz", "initrd": work / "tiny-initrd.img",
                  "disk": work / "tiny.qcow2"}
        await asyncio.to_thread(shutil.copyfile, vmlinuz, staged["kernel"])
        await asyncio.to_thread(_write_initramfs, root, moddir, staged["initrd"])
        await _make_boot_disk(work, staged["kernel"], staged["initrd"], staged["disk"])
        final = {key: output_dir / path.name for key, path in staged.items()}
        for key, path in staged.items():
            await asyncio.to_thread(path.replace, final[key])
    finally:
        await asyncio.to_thread(shutil.rmtree, work, True)
    return TinyGuest(disk=final["disk"], kernel=final["kernel"], initrd=final["initrd"],
                     kernel_version=version, cmdline=CMDLINE)
