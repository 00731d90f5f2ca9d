"""The libvirt driver: real guests under QEMU (KVM when it works here, TCG otherwise).

``spawn`` follows the seeds' ``LibvirtDriver.spawn``: fetch the image into the host's
base cache, lay the instance's disks on it, build the config drive, write the domain
XML, define and start the domain, and wait for libvirt's "started" event. Any failure
on the way destroys and undefines the domain and removes the instance directory (never
the shared base) before the error leaves, so the conductor can retry elsewhere.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import contextlib
import json
import logging
import os
import shutil
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

import libvirt

from strato.domain.devices import tap_name
from strato.domain.errors import (
    AbortBuild,
    InvalidState,
    NotFound,
    RescheduleBuild,
    StratoError,
    Unavailable,
)
from strato.domain.hostnames import hostname_for
from strato.domain.ids import HostName, ImageId, InstanceId, NodeName
from strato.domain.instances import PowerState
from strato.domain.networks import Vif
from strato.domain.requests import BootRequest
from strato.domain.resources import Flavor, NodeCapacity, Resources
from strato.virt import configdrive
from strato.virt.driver import GuestInfo, ImageSource
from strato.virt.imagecache import CacheManager, DiskSettings, ImageCache, record_use
from strato.virt.libvirt import config
from strato.virt.libvirt.config import DiskSpec, HostCaps, KernelBoot, domain_xml, guest_spec
from strato.virt.libvirt.host import Host, HostFacts, KvmProbe, LifecycleEvent, probe_kvm

__all__ = ["LibvirtDriver", "LibvirtDriverConfig"]

logger = logging.getLogger(__name__)

GiB = 1024**3
CONSOLE_LOG = "console.log"
_UNDEFINE_FLAGS = (libvirt.VIR_DOMAIN_UNDEFINE_MANAGED_SAVE
                   | libvirt.VIR_DOMAIN_UNDEFINE_SNAPSHOTS_METADATA
                   | libvirt.VIR_DOMAIN_UNDEFINE_NVRAM)

_POWER = {
    libvirt.VIR_DOMAIN_NOSTATE: PowerState.NOSTATE,
    libvirt.VIR_DOMAIN_RUNNING: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_BLOCKED: PowerState.RUNNING,
    libvirt.VIR_DOMAIN_PAUSED: PowerState.PAUSED,
    libvirt.VIR_DOMAIN_SHUTDOWN: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_SHUTOFF: PowerState.SHUTDOWN,
    libvirt.VIR_DOMAIN_CRASHED: PowerState.CRASHED,
    libvirt.VIR_DOMAIN_PMSUSPENDED: PowerState.SUSPENDED,
}


@dataclass(frozen=True, slots=True, kw_only=True)
class LibvirtDriverConfig:
    """The driver's settings (``strato.config.LibvirtSettings``, resolved)."""

    host: HostName
    instances_path: Path
    uri: str = "qemu:///system"
    virt_type: Literal["auto", "kvm", "qemu"] = "auto"
    kvm_probe_timeout: float = 2.0
    domain_prefix: str = "strato-"
    machine_type: str = "pc"
    disks: DiskSettings = DiskSettings()
    force_config_drive: bool = False
    config_drive_bus: Literal["ide", "virtio"] = "ide"
    spawn_timeout: float = 120.0
    clean_shutdown_timeout: float = 60.0
    boot_slots: int = 0
    boot_cpu_seconds: float = 5.0
    reserved_host_memory_mb: int = 512
    instance_overhead_mb: int = 64
    image_cache_max_age: float = 86400.0
    image_cache_interval: float = 2400.0
    kernel_cmdline: str = "console=ttyS0 quiet"
    version: str = "0.1.0"


class LibvirtDriver:
    """See the module docstring; implements :class:`strato.virt.driver.VirtDriver`."""

    def __init__(self, config: LibvirtDriverConfig, images: ImageSource,
                 *, clock: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self.config = config
        self.images = images
        self._clock = clock
        self._host = Host(config.uri)
        self.cache = ImageCache(config.instances_path, self._fetch, config.disks)
        self.cache_manager = CacheManager(config.instances_path,
                                          max_age=config.image_cache_max_age)
        self._facts: HostFacts | None = None
        self._caps: HostCaps | None = None
        self.kvm: KvmProbe | None = None
        self._boot_slots: asyncio.Semaphore | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._booting: dict[InstanceId, asyncio.TimerHandle] = {}

    # -- start / facts ------------------------------------------------------------------

    async def start(self) -> None:
        """Connect, decide KVM or TCG (once, logged), and check that QEMU can reach the
        instances directory."""
        await self._host.open()
        self._facts = facts = await self._host.facts()
        virt_type = await self._choose_virt_type()
        path = self.config.instances_path
        await asyncio.to_thread(_prepare_instances_path, path, facts.qemu_user)
        slots = self.config.boot_slots or (facts.cpus if virt_type == "qemu" else 0)
        self._boot_slots = asyncio.Semaphore(slots) if slots else None
        self._caps = HostCaps(virt_type=virt_type, arch=facts.arch,
                              machine=self.config.machine_type, emulator=facts.emulator,
                              version=self.config.version,
                              disk_cache=await asyncio.to_thread(_cache_mode, path))
        if self.config.image_cache_interval > 0:
            self._sweeper = asyncio.create_task(
                self._sweep_periodically(self.config.image_cache_interval))

    async def _choose_virt_type(self) -> Literal["kvm", "qemu"]:
        wanted = self.config.virt_type
        if wanted == "qemu":
            self.kvm = KvmProbe(False, "virt_type = qemu in the settings")
        else:
            self.kvm = await probe_kvm(timeout=self.config.kvm_probe_timeout)
        if wanted == "kvm" and not self.kvm.usable:
            raise Unavailable(f"virt_type = kvm, but KVM does not work here: {self.kvm.reason}")
        chosen: Literal["kvm", "qemu"] = "kvm" if self.kvm.usable else "qemu"
        if chosen == "qemu":
            logger.warning("guests run under TCG emulation (domain type qemu), not KVM: %s",
                           self.kvm.reason)
        else:
            logger.info("guests run under KVM: %s", self.kvm.reason)
        return chosen

    @property
    def caps(self) -> HostCaps:
        if self._caps is None:
            raise InvalidState("the libvirt driver is not started")
        return self._caps

    def domain_name(self, instance_id: InstanceId) -> str:
        return f"{self.config.domain_prefix}{instance_id}"

    def instance_dir(self, instance_id: InstanceId) -> Path:
        return self.config.instances_path / instance_id

    async def node_capacities(self) -> Sequence[NodeCapacity]:
        facts = self._facts
        if facts is None:
            raise InvalidState("the libvirt driver is not started")
        disk = await asyncio.to_thread(shutil.disk_usage, self.config.instances_path)
        kvm = self.kvm or KvmProbe(False, "not probed")
        cpu_info = {"arch": facts.arch, "virt_type": self.caps.virt_type,
                    "accelerator": "kvm" if self.caps.virt_type == "kvm" else "tcg",
                    "accelerator_reason": kvm.reason, "topology": {"cores": facts.cpus}}
        return [NodeCapacity(
            host=self.config.host, node=NodeName(self.config.host),
            total=Resources(vcpus=facts.cpus, memory_mb=facts.memory_mb,
                            disk_gb=disk.total // GiB),
            reserved=Resources(memory_mb=self.config.reserved_host_memory_mb),
            hypervisor_type="QEMU", hypervisor_version=facts.hypervisor_version,
            cpu_info=json.dumps(cpu_info, sort_keys=True),
            supported_instances=((facts.arch, self.caps.virt_type, "hvm"),))]

    # -- spawn --------------------------------------------------------------------------

    def instance_overhead(self, flavor: Flavor) -> Resources:
        """QEMU's own memory beside the guest's (device emulation, and under TCG its
        translation cache): ``instance_overhead_mb`` per guest."""
        return Resources(memory_mb=self.config.instance_overhead_mb)

    async def prepare_image(self, req: BootRequest) -> None:
        try:
            await self.cache.base(req.image)
        except Unavailable as exc:
            raise RescheduleBuild(str(exc)) from exc

    async def spawn(self, req: BootRequest, *, node: NodeName,
                    vifs: Sequence[Vif] = ()) -> None:
        if node != NodeName(self.config.host):
            raise AbortBuild(f"node {node} is not on host {self.config.host}")
        name = self.domain_name(req.instance_id)
        try:
            started = time.monotonic()
            xml = await self._prepare(req, vifs)
            prepared = time.monotonic()
            await self._start_domain(name, req.instance_id, xml)
            logger.info("domain %s is running (%s): disks and config drive %.2f s, "
                        "define and start %.2f s", name, self.caps.virt_type,
                        prepared - started, time.monotonic() - prepared)
        except BaseException as exc:
            await self._cleanup(req.instance_id)
            if isinstance(exc, libvirt.libvirtError):
                raise RescheduleBuild(f"libvirt could not start {name}: "
                                      f"{exc.get_error_message()}") from exc
            if isinstance(exc, Unavailable):
                raise RescheduleBuild(str(exc)) from exc
            raise

    async def _prepare(self, req: BootRequest, vifs: Sequence[Vif]) -> str:
        """Disks, config drive and the domain XML, in a fresh instance directory."""
        directory = self.instance_dir(req.instance_id)
        await asyncio.to_thread(_fresh_dir, directory)
        disks, bases = await self._disks(req, directory)
        kernel_boot, kernel_bases = await self._kernel_boot(req, directory)
        if self._wants_config_drive(req):
            disks.append(await self._config_drive(req, directory, len(disks), vifs))
        await asyncio.to_thread(record_use, directory, [*bases, *kernel_bases])
        nics = [config.Nic(mac=v.mac_address, tap=tap_name(v.port_id), mtu=v.mtu)
                for v in vifs]
        spec = guest_spec(req, host=self.caps, name=self.domain_name(req.instance_id),
                          disks=disks, nics=nics, console_log=directory / CONSOLE_LOG,
                          kernel_boot=kernel_boot, created_at=self._clock())
        xml = domain_xml(spec)
        await asyncio.to_thread((directory / "libvirt.xml").write_text, xml)
        return xml

    async def _disks(self, req: BootRequest, directory: Path) -> tuple[list[DiskSpec], list[Path]]:
        flavor = req.flavor
        root = await self.cache.create_root_disk(req.image, directory / "disk", flavor.root_gb)
        disks = [DiskSpec(path=root.path, format=root.format, target="vda")]
        bases = [root.base] if root.base else []
        targets = iter("bcdefgh")
        if flavor.ephemeral_gb:
            eph = await self.cache.create_ephemeral(directory / "disk.eph0",
                                                    flavor.ephemeral_gb, "ephemeral0")
            disks.append(DiskSpec(path=eph.path, format=eph.format, target=f"vd{next(targets)}"))
            bases += [eph.base] if eph.base else []
        if flavor.swap_mb:
            swap = await self.cache.create_swap(directory / "disk.swap", flavor.swap_mb)
            disks.append(DiskSpec(path=swap.path, format=swap.format,
                                  target=f"vd{next(targets)}"))
            bases += [swap.base] if swap.base else []
        return disks, bases

    async def _kernel_boot(self, req: BootRequest, directory: Path
                           ) -> tuple[KernelBoot | None, list[Path]]:
        """AMI-style images name a kernel (and ramdisk) image: boot those directly. The
        ids are the request's, which the API checked the user may boot (never the
        image's properties: the service token reads every image)."""
        if req.kernel_id is None:
            return None, []
        kernel = await self._boot_file(req.kernel_id, "kernel", directory / "kernel")
        bases = [kernel]
        initrd = None
        if req.ramdisk_id is not None:
            bases.append(await self._boot_file(req.ramdisk_id, "ramdisk",
                                               directory / "ramdisk"))
            initrd = directory / "ramdisk"
        cmdline = req.image.properties.get("os_command_line") or self.config.kernel_cmdline
        return KernelBoot(kernel=directory / "kernel", initrd=initrd, cmdline=cmdline), bases

    async def _boot_file(self, image_id: str, what: str, dest: Path) -> Path:
        try:
            image = await self.images.get(ImageId(image_id))
        except NotFound as exc:
            raise AbortBuild(f"the image's {what} image {image_id} does not exist") from exc
        if image.status != "active":
            raise AbortBuild(f"the image's {what} image {image_id} is not active")
        cached = await self.cache.fetch_file(image, dest)
        return cached.path

    def _wants_config_drive(self, req: BootRequest) -> bool:
        # Injected files have no other way in (strato has no metadata service), so they
        # bring a config drive with them.
        return (req.config_drive or bool(req.files) or self.config.force_config_drive
                or req.image.properties.get("img_config_drive") == "mandatory")

    async def _config_drive(self, req: BootRequest, directory: Path, index: int,
                            vifs: Sequence[Vif]) -> DiskSpec:
        md = configdrive.InstanceMetadata(
            uuid=req.instance_id, name=req.name,
            hostname=hostname_for(req.name, req.instance_id, req.launch_index, False),
            project_id=req.project_id,
            availability_zone=req.hints.availability_zone or "nova",
            launch_index=req.launch_index, metadata=dict(req.metadata),
            files=tuple(configdrive.DriveFile(path=f.path,
                                                 contents=base64.b64decode(f.contents))
                        for f in req.files),
            user_data=_decode_user_data(req.user_data), vifs=tuple(vifs),
            public_keys={req.key_name: req.key_data} if req.key_name and req.key_data else {})
        path = directory / "disk.config"
        await asyncio.to_thread(configdrive.write_config_drive, md, path)
        if self.config.config_drive_bus == "ide":
            return DiskSpec(path=path, format="raw", target="hdd", bus="ide", device="cdrom",
                            readonly=True)
        return DiskSpec(path=path, format="raw", target=f"vd{chr(ord('a') + index)}",
                        readonly=True)

    async def _start_domain(self, name: str, instance_id: InstanceId, xml: str) -> None:
        """Define and start the domain, and wait for libvirt's "started" event."""
        conn = self._host.conn
        dom = await asyncio.to_thread(conn.defineXML, xml)
        async with self._boot_slot(instance_id):
            with self._host.listen(instance_id, (waiter := _Waiter({"started"},
                                                                    {"stopped", "crashed"}))):
                await asyncio.to_thread(dom.create)
                await self._wait_running(dom, waiter, name)

    async def _wait_running(self, dom: libvirt.virDomain, waiter: _Waiter, name: str) -> None:
        try:
            async with asyncio.timeout(self.config.spawn_timeout):
                await waiter.future
        except TimeoutError:
            state, _ = await asyncio.to_thread(dom.state)
            if state == libvirt.VIR_DOMAIN_RUNNING:
                logger.warning("no started event for %s, but it runs", name)
                return
            raise RescheduleBuild(f"domain {name} did not run within "
                                  f"{self.config.spawn_timeout:.0f} s") from None

    @contextlib.asynccontextmanager
    async def _boot_slot(self, instance_id: InstanceId) -> AsyncIterator[None]:
        """Admit one booting guest per slot: under TCG a boot keeps a core busy for a few
        seconds, and more boots than cores slow every one of them down. A started guest
        keeps its slot for ``boot_cpu_seconds``, or until it is stopped or destroyed."""
        slots = self._boot_slots
        if slots is None:
            yield
            return
        self._free_slot(instance_id)  # a restart while the last boot still holds one
        await slots.acquire()
        ok = False
        try:
            yield
            ok = True
        finally:
            if ok:
                self._booting[instance_id] = asyncio.get_running_loop().call_later(
                    self.config.boot_cpu_seconds, self._free_slot, instance_id)
            else:
                slots.release()

    def _free_slot(self, instance_id: InstanceId) -> None:
        handle = self._booting.pop(instance_id, None)
        if handle is not None and self._boot_slots is not None:
            handle.cancel()
            self._boot_slots.release()

    # -- teardown -----------------------------------------------------------------------

    async def destroy(self, instance_id: InstanceId) -> None:
        await self._cleanup(instance_id)

    async def _cleanup(self, instance_id: InstanceId) -> None:
        """Destroy and undefine the domain, then remove the instance directory; each step
        tolerates what is already gone. The shared base images stay."""
        name = self.domain_name(instance_id)
        self._free_slot(instance_id)
        with contextlib.suppress(NotFound):
            dom = await self._host.lookup(name)
            await _ignore_gone(dom.destroy)
            try:
                await _ignore_gone(dom.undefineFlags, _UNDEFINE_FLAGS)
            except libvirt.libvirtError:
                await _ignore_gone(dom.undefine)
        await asyncio.to_thread(shutil.rmtree, self.instance_dir(instance_id), True)

    # -- state and power ----------------------------------------------------------------

    async def get_info(self, instance_id: InstanceId) -> GuestInfo:
        dom = await self._host.lookup(self.domain_name(instance_id))
        state, _reason = await asyncio.to_thread(dom.state)
        power = _POWER.get(state, PowerState.NOSTATE)
        if state == libvirt.VIR_DOMAIN_SHUTOFF and await asyncio.to_thread(
                dom.hasManagedSaveImage, 0):
            power = PowerState.SUSPENDED
        return GuestInfo(instance_id=instance_id, power_state=power,
                         node=NodeName(self.config.host))

    async def list_instances(self) -> Sequence[InstanceId]:
        prefix = self.config.domain_prefix
        return [InstanceId(n[len(prefix):]) for n in await self._host.domain_names()
                if n.startswith(prefix)]

    async def reboot(self, instance_id: InstanceId, *, hard: bool = False) -> None:
        """Soft: ACPI shutdown, wait up to ``clean_shutdown_timeout``, start again; a
        guest that ignores ACPI (or ``hard``) is destroyed and started instead."""
        dom = await self._host.lookup(self.domain_name(instance_id))
        if hard or not await self._clean_shutdown(dom, instance_id):
            await self._force_off(dom, instance_id)
        await self._start_existing(dom, instance_id)

    async def power_off(self, instance_id: InstanceId, *, timeout: float | None = None) -> None:
        """Stop the guest: ACPI first (for ``timeout`` s, default the configured clean
        shutdown time; 0 forces at once), then destroy."""
        dom = await self._host.lookup(self.domain_name(instance_id))
        wait = self.config.clean_shutdown_timeout if timeout is None else timeout
        if not await self._clean_shutdown(dom, instance_id, wait):
            await self._force_off(dom, instance_id)

    async def power_on(self, instance_id: InstanceId) -> None:
        dom = await self._host.lookup(self.domain_name(instance_id))
        state, _ = await asyncio.to_thread(dom.state)
        if state != libvirt.VIR_DOMAIN_RUNNING:
            await self._start_existing(dom, instance_id)

    async def pause(self, instance_id: InstanceId) -> None:
        dom = await self._host.lookup(self.domain_name(instance_id))
        await _call(dom.suspend)

    async def unpause(self, instance_id: InstanceId) -> None:
        dom = await self._host.lookup(self.domain_name(instance_id))
        await _call(dom.resume)

    async def suspend(self, instance_id: InstanceId) -> None:
        """Save the guest's memory to disk and stop it (libvirt's managed save)."""
        dom = await self._host.lookup(self.domain_name(instance_id))
        await _call(dom.managedSave, 0)

    async def resume(self, instance_id: InstanceId) -> None:
        """Restore a suspended guest from its managed save."""
        dom = await self._host.lookup(self.domain_name(instance_id))
        await self._start_existing(dom, instance_id)

    async def console_output(self, instance_id: InstanceId, *, max_bytes: int = 100 * 1024
                             ) -> str:
        """The tail of what the guest printed on its serial console."""
        path = self.instance_dir(instance_id) / CONSOLE_LOG
        try:
            data = await asyncio.to_thread(_tail, path, max_bytes)
        except FileNotFoundError:
            await self._host.lookup(self.domain_name(instance_id))  # NotFound if no guest
            return ""
        return data.decode("utf-8", errors="replace")

    async def _clean_shutdown(self, dom: libvirt.virDomain, instance_id: InstanceId,
                              timeout: float | None = None) -> bool:
        wait = self.config.clean_shutdown_timeout if timeout is None else timeout
        self._free_slot(instance_id)
        state, _ = await asyncio.to_thread(dom.state)
        if state == libvirt.VIR_DOMAIN_SHUTOFF:
            return True
        if wait <= 0:
            return False
        waiter = _Waiter({"stopped"}, set())
        with self._host.listen(instance_id, waiter):
            try:
                await asyncio.to_thread(dom.shutdown)
            except libvirt.libvirtError as exc:
                logger.info("ACPI shutdown of %s refused: %s", dom.name(),
                            exc.get_error_message())
                return False
            try:
                async with asyncio.timeout(wait):
                    await waiter.future
            except TimeoutError:
                logger.info("%s ignored ACPI shutdown for %.0f s; forcing", dom.name(), wait)
                return False
        return True

    async def _force_off(self, dom: libvirt.virDomain, instance_id: InstanceId) -> None:
        """Destroy the domain and wait for its "stopped" event, so that the event cannot
        reach a later start's waiter and pass for a failed start."""
        self._free_slot(instance_id)
        waiter = _Waiter({"stopped"}, set())
        with self._host.listen(instance_id, waiter):
            state, _ = await asyncio.to_thread(dom.state)
            if state == libvirt.VIR_DOMAIN_SHUTOFF:
                return
            await _ignore_gone(dom.destroy)
            try:
                async with asyncio.timeout(10.0):
                    await waiter.future
            except TimeoutError:
                logger.warning("no stopped event after destroying %s", dom.name())

    async def _start_existing(self, dom: libvirt.virDomain, instance_id: InstanceId) -> None:
        # Only "started" counts: a stop or crash of this domain's previous run may still
        # be on its way, and a start that fails raises from create() itself.
        waiter = _Waiter({"started"}, set())
        async with self._boot_slot(instance_id):
            with self._host.listen(instance_id, waiter):
                await _call(dom.create)
                await self._wait_running(dom, waiter, dom.name())

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._sweeper
            self._sweeper = None
        await self._host.close()
        closer = getattr(self.images, "aclose", None)
        if closer is not None:
            await closer()

    async def _sweep_periodically(self, interval: float) -> None:
        while True:
            await asyncio.sleep(interval)
            try:
                removed = await self.cache_manager.sweep()
            except (OSError, StratoError) as exc:
                logger.warning("image cache sweep failed: %s", exc)
                continue
            if removed:
                logger.info("image cache: removed %d unused base(s)", len(removed))

    # -- images -------------------------------------------------------------------------

    async def _fetch(self, image_id: ImageId, dest: Path) -> None:
        await self.images.download(image_id, dest)

    async def sweep_image_cache(self) -> list[Path]:
        """Remove cached bases no instance uses and nobody touched for the max age."""
        return await self.cache_manager.sweep()


class _Waiter:
    """A future completed by the first lifecycle event in ``ok`` (or failed by one in
    ``bad``), for use as a :meth:`Host.listen` listener."""

    def __init__(self, ok: set[str], bad: set[str]) -> None:
        self.ok, self.bad = ok, bad
        self.future: asyncio.Future[LifecycleEvent] = asyncio.get_running_loop().create_future()

    def __call__(self, ev: LifecycleEvent) -> None:
        if self.future.done():
            return
        if ev.kind in self.ok:
            self.future.set_result(ev)
        elif ev.kind in self.bad:
            self.future.set_exception(RescheduleBuild(
                f"domain {ev.domain_name} {ev.kind} (detail {ev.detail}) while starting"))


async def _call(fn: Callable[..., object], *args: object) -> None:
    try:
        await asyncio.to_thread(fn, *args)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() == libvirt.VIR_ERR_OPERATION_INVALID:
            raise InvalidState(exc.get_error_message()) from exc
        raise Unavailable(f"libvirt: {exc.get_error_message()}") from exc


async def _ignore_gone(fn: Callable[..., object], *args: object) -> None:
    """Call ``fn``; a domain that is not running or no longer exists is fine."""
    try:
        await asyncio.to_thread(fn, *args)
    except libvirt.libvirtError as exc:
        if exc.get_error_code() not in (libvirt.VIR_ERR_OPERATION_INVALID,
                                        libvirt.VIR_ERR_NO_DOMAIN):
            raise


def _decode_user_data(data: str | None) -> bytes | None:
    if data is None:
        return None
    try:
        return base64.b64decode(data, validate=True)
    except (binascii.Error, ValueError) as exc:  # the API checked it; be safe anyway
        raise AbortBuild("user_data is not valid base64") from exc


def _fresh_dir(path: Path) -> None:
    """The instance directory, empty (a rebuild on this host starts over)."""
    shutil.rmtree(path, ignore_errors=True)
    path.mkdir(parents=True, mode=0o755)
    path.chmod(0o755)


def _prepare_instances_path(path: Path, qemu_user: str | None) -> None:
    """Create the instances directory (0755) and check that QEMU, which runs as an
    unprivileged user, can reach it through every parent directory."""
    path.mkdir(parents=True, exist_ok=True)
    if os.geteuid() != 0 or qemu_user in (None, "+0:+0"):
        return
    for parent in [path, *path.parents]:
        mode = parent.stat().st_mode
        if not mode & 0o001:
            raise Unavailable(
                f"QEMU runs as {qemu_user} and cannot reach {path}: {parent} is not "
                f"searchable by other users (mode {mode & 0o777:o}); choose an instances "
                "path QEMU can reach (compute.libvirt.instances_path), e.g. under /var/lib")
    path.chmod(0o755)
    (path / "_base").mkdir(exist_ok=True)
    (path / "_base").chmod(0o755)


def _cache_mode(path: Path) -> str:
    """'none' (O_DIRECT, no host page cache, as Nova prefers) when the file system
    supports it, else 'writeback'."""
    probe = path / ".odirect-probe"
    try:
        fd = os.open(probe, os.O_CREAT | os.O_WRONLY | getattr(os, "O_DIRECT", 0), 0o600)
    except OSError:
        return "writeback"
    os.close(fd)
    probe.unlink(missing_ok=True)
    return "none"


def _tail(path: Path, max_bytes: int) -> bytes:
    with path.open("rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(max(0, size - max_bytes))
        return handle.read()
