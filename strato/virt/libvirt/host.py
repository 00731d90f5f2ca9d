"""The connection to libvirtd, its lifecycle events, and what this host can run.

Events: libvirt accepts one event-loop implementation per process, for the life of the
process (a second ``virEventRegisterImpl`` is ignored, and a connection bound to a loop
that has gone away hangs). So libvirtaio runs on one asyncio loop of its own, in a daemon
thread started on first use, and every lifecycle event is handed to the loop of the
driver that subscribed (``call_soon_threadsafe``). A spawn then waits on a future that
the "started" event completes, never polling; a test suite with a loop per test and a
service with one loop behave the same.

Blocking libvirt calls (define, create, destroy) run in worker threads: the libvirt
connection is thread-safe, and the service's loop keeps serving meanwhile.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import tempfile
import threading
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import libvirt
import libvirtaio

from strato.domain.errors import NotFound, Unavailable
from strato.process import run

__all__ = ["Host", "HostFacts", "KvmProbe", "LifecycleEvent", "probe_kvm"]

logger = logging.getLogger(__name__)

# libvirt prints its own errors to stderr unless a handler takes them; ours drops them,
# because every failing call also raises libvirtError, which we turn into our errors.
libvirt.registerErrorHandler(lambda _ctx, _err: None, None)

_EVENT_NAMES = {
    libvirt.VIR_DOMAIN_EVENT_DEFINED: "defined",
    libvirt.VIR_DOMAIN_EVENT_UNDEFINED: "undefined",
    libvirt.VIR_DOMAIN_EVENT_STARTED: "started",
    libvirt.VIR_DOMAIN_EVENT_SUSPENDED: "suspended",
    libvirt.VIR_DOMAIN_EVENT_RESUMED: "resumed",
    libvirt.VIR_DOMAIN_EVENT_STOPPED: "stopped",
    libvirt.VIR_DOMAIN_EVENT_SHUTDOWN: "shutdown",
    libvirt.VIR_DOMAIN_EVENT_PMSUSPENDED: "pmsuspended",
    libvirt.VIR_DOMAIN_EVENT_CRASHED: "crashed",
}


@dataclass(frozen=True, slots=True)
class LifecycleEvent:
    """One domain lifecycle event: ``kind`` is libvirt's event ("started", "stopped", ...)
    and ``detail`` its numeric detail (e.g. why it stopped)."""

    domain_uuid: str
    domain_name: str
    kind: str
    detail: int


class _ThreadSafeAsyncIOImpl(libvirtaio.virEventAsyncIOImpl):  # type: ignore[misc]
    """libvirtaio, made safe for libvirt calls made from worker threads.

    libvirt calls these six functions from whichever thread runs an API call (a domain
    create in ``asyncio.to_thread``, say), but asyncio objects may only be touched on
    the loop's own thread. Plain libvirtaio then schedules the timer that dispatches a
    queued event without waking the loop, and the event arrives at the next keepalive,
    seconds late. Here every operation from another thread is queued to the loop with
    ``call_soon_threadsafe`` (which wakes it); ids for new handles and timers are handed
    out at once. Operations on the loop's thread run directly unless queued ones are
    still outstanding, so their order is always libvirt's order.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, thread_id: int) -> None:
        super().__init__(loop=loop)
        self._thread_id = thread_id
        self._lock = threading.Lock()
        self._queued = 0

    def _direct(self) -> bool:
        with self._lock:
            return self._queued == 0 and threading.get_ident() == self._thread_id

    def _queue(self, op: Callable[[], object]) -> None:
        def run() -> None:
            try:
                op()
            finally:
                with self._lock:
                    self._queued -= 1
        with self._lock:
            self._queued += 1
        self.loop.call_soon_threadsafe(run)

    def _add_handle(self, fd: int, event: int, cb: Any, opaque: Any) -> int:
        if self._direct():
            return int(super()._add_handle(fd, event, cb, opaque))
        callback = libvirtaio.FDCallback(self, cb, opaque, descriptor=None,
                                         event=event)

        def register() -> None:
            callback.descriptor = self.descriptors[fd]
            self.callbacks[callback.iden] = callback
            callback.descriptor.add_handle(callback)
            self._pending_inc()
        self._queue(register)
        return int(callback.iden)

    def _update_handle(self, watch: int, event: int) -> None:
        if self._direct():
            super()._update_handle(watch, event)
        else:
            self._queue(lambda: watch in self.callbacks and super(
                _ThreadSafeAsyncIOImpl, self)._update_handle(watch, event))

    def _remove_handle(self, watch: int) -> int:
        if self._direct():
            return int(super()._remove_handle(watch))
        self._queue(lambda: super(_ThreadSafeAsyncIOImpl, self)._remove_handle(watch))
        return 0

    def _add_timeout(self, timeout: int, cb: Any, opaque: Any) -> int:
        if self._direct():
            return int(super()._add_timeout(timeout, cb, opaque))
        callback = libvirtaio.TimeoutCallback(self, cb, opaque)

        def register() -> None:
            self.callbacks[callback.iden] = callback
            callback.update(timeout=timeout)
            self._pending_inc()
        self._queue(register)
        return int(callback.iden)

    def _update_timeout(self, timer: int, timeout: int) -> None:
        if self._direct():
            super()._update_timeout(timer, timeout)
        else:
            self._queue(lambda: timer in self.callbacks and super(
                _ThreadSafeAsyncIOImpl, self)._update_timeout(timer, timeout))

    def _remove_timeout(self, timer: int) -> int:
        if self._direct():
            return int(super()._remove_timeout(timer))
        self._queue(lambda: super(_ThreadSafeAsyncIOImpl, self)._remove_timeout(timer))
        return 0


class _EventThread:
    """The process's one libvirt event loop (see the module docstring)."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def ensure(cls) -> None:
        with cls._lock:
            if cls._loop is not None:
                return
            ready = threading.Event()
            loop = asyncio.new_event_loop()

            def run() -> None:
                asyncio.set_event_loop(loop)
                _ThreadSafeAsyncIOImpl(loop, threading.get_ident()).register()
                ready.set()
                loop.run_forever()

            threading.Thread(target=run, name="libvirt-events", daemon=True).start()
            ready.wait()
            cls._loop = loop


@dataclass(frozen=True, slots=True)
class KvmProbe:
    """Whether KVM really runs guests here, and why we think so."""

    usable: bool
    reason: str


_PROBE_CACHE: dict[str, KvmProbe] = {}

# A boot sector that writes 1 to QEMU's isa-debug-exit port: QEMU then exits with code 3.
# It boots the way guests do (SeaBIOS, a virtio disk). With working KVM this takes about
# 0.1 s. Where nested virtualisation is broken it crawls (4-5 s measured on the build
# machine, whose Linux guests then die in a KVM emulation failure) or hangs; either way
# it misses the deadline and guests run under TCG.
_PROBE_SECTOR = bytes([0xB0, 0x01, 0xE6, 0xF4, 0xF4, 0xEB, 0xFD]).ljust(510, b"\0") + b"\x55\xaa"


async def probe_kvm(*, timeout: float = 2.0, emulator: str = "qemu-system-x86_64") -> KvmProbe:
    """Run a one-instruction guest under KVM; usable only if it finishes within
    ``timeout``. The answer is cached for the process (it does not change while we run)."""
    if emulator in _PROBE_CACHE:
        return _PROBE_CACHE[emulator]
    result = await _probe(timeout, emulator)
    _PROBE_CACHE[emulator] = result
    return result


async def _probe(timeout: float, emulator: str) -> KvmProbe:
    if not os.access("/dev/kvm", os.R_OK | os.W_OK):
        return KvmProbe(False, "/dev/kvm is missing or not accessible")
    binary = shutil.which(emulator)
    if binary is None:
        return KvmProbe(False, f"{emulator} is not installed")
    with tempfile.TemporaryDirectory(prefix="strato-kvm-probe-") as tmp:
        sector = Path(tmp) / "probe.img"
        # SeaBIOS does not boot a virtio disk smaller than a few sectors.
        sector.write_bytes(_PROBE_SECTOR.ljust(1024 * 1024, b"\0"))
        started = time.monotonic()
        try:
            done = await run(
                binary, "-machine", "pc,accel=kvm", "-nodefaults", "-no-user-config",
                "-display", "none", "-m", "16",
                "-device", "isa-debug-exit,iobase=0xf4,iosize=0x04",
                "-drive", f"file={sector},format=raw,if=virtio", timeout=timeout)
        except TimeoutError:
            return KvmProbe(False, f"a KVM test guest did not finish within {timeout:.1f} s "
                                   "(KVM guests hang on this host)")
    elapsed = time.monotonic() - started
    if done.returncode != 3:
        message = done.stderr.decode(errors="replace").strip().splitlines()
        return KvmProbe(False, f"a KVM test guest failed (exit {done.returncode}): "
                               f"{message[-1] if message else 'no message'}")
    return KvmProbe(True, f"a KVM test guest ran in {elapsed:.2f} s")


@dataclass(frozen=True, slots=True)
class HostFacts:
    """What the hypervisor host offers, read once at start."""

    hostname: str
    arch: str
    cpus: int
    memory_mb: int
    qemu_user: str | None        # the DAC label QEMU runs as, e.g. "+64055:+64055"
    emulator: str
    hypervisor_version: int


class Host:
    """A connection to libvirtd with lifecycle events delivered on the caller's loop."""

    def __init__(self, uri: str) -> None:
        self.uri = uri
        self._conn: libvirt.virConnect | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._callback_id: int | None = None
        self._listeners: dict[str, list[Callable[[LifecycleEvent], None]]] = {}

    @property
    def conn(self) -> libvirt.virConnect:
        if self._conn is None:
            raise Unavailable("the libvirt connection is not open")
        return self._conn

    async def open(self) -> None:
        """Connect and subscribe to lifecycle events."""
        _EventThread.ensure()
        self._loop = asyncio.get_running_loop()
        try:
            self._conn = await asyncio.to_thread(libvirt.open, self.uri)
        except libvirt.libvirtError as exc:
            raise Unavailable(f"cannot connect to libvirt at {self.uri}: "
                              f"{exc.get_error_message()}") from exc
        self._callback_id = self.conn.domainEventRegisterAny(
            None, libvirt.VIR_DOMAIN_EVENT_ID_LIFECYCLE, self._on_event, None)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is None:
            return
        if self._callback_id is not None:
            with contextlib.suppress(libvirt.libvirtError):
                conn.domainEventDeregisterAny(self._callback_id)
        with contextlib.suppress(libvirt.libvirtError):
            await asyncio.to_thread(conn.close)

    # -- events -------------------------------------------------------------------------

    def _on_event(self, _conn: Any, dom: Any, event: int, detail: int, _opaque: Any) -> None:
        """Runs on the libvirt event thread: hand the event to our loop."""
        loop = self._loop
        if loop is None or loop.is_closed():
            return
        ev = LifecycleEvent(domain_uuid=dom.UUIDString(), domain_name=dom.name(),
                            kind=_EVENT_NAMES.get(event, str(event)), detail=detail)
        with contextlib.suppress(RuntimeError):  # the loop closed meanwhile
            loop.call_soon_threadsafe(self._dispatch, ev)

    def _dispatch(self, ev: LifecycleEvent) -> None:
        logger.debug("libvirt event %s %s (%d)", ev.domain_name, ev.kind, ev.detail)
        for listener in list(self._listeners.get(ev.domain_uuid, ())):
            listener(ev)

    @contextlib.contextmanager
    def listen(self, domain_uuid: str, listener: Callable[[LifecycleEvent], None]
               ) -> Any:
        """Call ``listener`` with every event of one domain while the block runs."""
        self._listeners.setdefault(domain_uuid, []).append(listener)
        try:
            yield
        finally:
            listeners = self._listeners.get(domain_uuid, [])
            listeners.remove(listener)
            if not listeners:
                self._listeners.pop(domain_uuid, None)

    # -- facts --------------------------------------------------------------------------

    async def facts(self) -> HostFacts:
        """The host's CPUs, memory and the user QEMU runs as (from the capabilities)."""
        conn = self.conn
        info = await asyncio.to_thread(conn.getInfo)
        caps_xml = await asyncio.to_thread(conn.getCapabilities)
        mem = await asyncio.to_thread(conn.getMemoryStats,
                                      libvirt.VIR_NODE_MEMORY_STATS_ALL_CELLS)
        caps = ET.fromstring(caps_xml)
        emulator = caps.findtext("./guest/arch[@name='x86_64']/emulator") or \
            "/usr/bin/qemu-system-x86_64"
        dac = caps.find("./host/secmodel[model='dac']/baselabel[@type='kvm']")
        if dac is None:
            dac = caps.find("./host/secmodel[model='dac']/baselabel")
        return HostFacts(hostname=await asyncio.to_thread(conn.getHostname),
                         arch=info[0], cpus=int(info[2]),
                         # nodeinfo's memory is a NUMA cell's view here; the stats total is
                         # the whole host.
                         memory_mb=int(mem.get("total", info[1] * 1024)) // 1024,
                         qemu_user=dac.text if dac is not None else None,
                         emulator=emulator,
                         hypervisor_version=await asyncio.to_thread(conn.getVersion))

    # -- domains ------------------------------------------------------------------------

    async def lookup(self, name: str) -> libvirt.virDomain:
        """The domain called ``name``; ``NotFound`` if there is none."""
        try:
            return await asyncio.to_thread(self.conn.lookupByName, name)
        except libvirt.libvirtError as exc:
            if exc.get_error_code() == libvirt.VIR_ERR_NO_DOMAIN:
                raise NotFound(f"no domain {name}") from exc
            raise Unavailable(f"libvirt: {exc.get_error_message()}") from exc

    async def domain_names(self) -> list[str]:
        doms = await asyncio.to_thread(self.conn.listAllDomains, 0)
        return [d.name() for d in doms]
