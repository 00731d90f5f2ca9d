"""The composition root: the one module that picks concrete adapters and wires services.

Each ``run_*`` coroutine runs one role until ``stop`` is set, then shuts it down cleanly
(waiting for in-flight handlers). ``strato up`` runs them all in one process over the
in-process bus; ``strato <role>`` runs one per process over RabbitMQ.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
import tempfile
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any

from strato.compute import host as compute_host
from strato.compute import service as compute_service
from strato.compute.client import ComputeClient
from strato.compute.deps import ComputeDeps
from strato.compute.locks import KeyedLocks
from strato.compute.tracker import ResourceTracker
from strato.conductor import service as conductor_service
from strato.conductor.boot import BootDeps
from strato.conductor.client import ConductorClient
from strato.conductor.deadlines import DeadlineDeps, watch_builds
from strato.config import ComputeSettings, Settings
from strato.db.migrate import upgrade
from strato.db.ports import Database
from strato.db.sql import SqlDatabase
from strato.domain.context import admin_context
from strato.domain.errors import StratoError
from strato.domain.ids import HostName
from strato.domain.resources import Resources
from strato.identity.files import DATA_DIR_MODE, private_dir, private_file, tighten
from strato.network.agent import DhcpAgent
from strato.network.firewall import Firewall
from strato.network.host import FakeHostNetwork, HostNetwork, LinuxBridgeHost
from strato.rpc.bus import Bus, HandlerTable, Target
from strato.rpc.contracts.compute import TOPIC as COMPUTE_TOPIC
from strato.rpc.contracts.conductor import TOPIC as CONDUCTOR_TOPIC
from strato.rpc.contracts.network import FANOUT_TOPIC as NETWORK_FANOUT
from strato.rpc.contracts.network import NetworksChanged
from strato.rpc.contracts.scheduler import FANOUT_TOPIC as SCHEDULER_FANOUT
from strato.rpc.contracts.scheduler import TOPIC as SCHEDULER_TOPIC
from strato.rpc.transport import open_bus
from strato.scheduler import service as scheduler_service
from strato.scheduler.client import SchedulerClient
from strato.scheduler.hoststate import CacheSettings
from strato.virt.driver import ImageSource, VirtDriver
from strato.virt.fake import FakeDriver, FakeDriverConfig

if TYPE_CHECKING:
    from starlette.types import ASGIApp

    from strato.identity.service import TokenService
    from strato.virt.libvirt.driver import LibvirtDriverConfig

__all__ = ["Cloud", "ComputeSpec", "embedded", "make_driver", "open_database", "run_api",
           "run_compute", "run_conductor", "run_scheduler", "scheduler_deps"]

logger = logging.getLogger(__name__)

# The identity that the service token acts as (in the admin project), and its one role.
SERVICE_USER = "strato-service"
SERVICE_ROLE = "service"


LIBVIRT_SOCKET = Path("/var/run/libvirt/libvirt-sock")


def driver_kind(settings: ComputeSettings) -> str:
    """The driver ``auto`` stands for: libvirt when its daemon runs here, else fake."""
    if settings.driver != "auto":
        return settings.driver
    if settings.libvirt.uri != "qemu:///system" or LIBVIRT_SOCKET.exists():
        return "libvirt"
    logger.warning("libvirtd is not running here (no %s): using the fake driver; guests "
                   "are simulated", LIBVIRT_SOCKET)
    return "fake"


def make_driver(settings: Settings, host: str, *,
                images: ImageSource | None = None) -> VirtDriver:
    """The virt driver the settings ask for; the libvirt driver fetches images from
    ``images`` (default: the image API at ``compute.image_api_url`` with the service
    token)."""
    compute = settings.compute
    if driver_kind(compute) == "fake":
        fake = compute.fake
        return FakeDriver(FakeDriverConfig(
            host=HostName(host), nodes=fake.nodes,
            capacity=Resources(vcpus=fake.vcpus, memory_mb=fake.memory_mb,
                               disk_gb=fake.disk_gb),
            spawn_delay=fake.spawn_delay, console_delay=fake.console_delay,
            fail_names=frozenset(fake.fail_names),
            fail_every=fake.fail_every, fail_retryable=fake.fail_retryable,
            state_file=Path(fake.state_dir) / f"{host}.json" if fake.state_dir else None))
    from strato.image.client import ImageClient, ImageServiceSource
    from strato.virt.libvirt.driver import LibvirtDriver

    if images is None:
        images = ImageServiceSource(ImageClient(image_api_url(settings),
                                                service_token(settings)))
    return LibvirtDriver(libvirt_config(settings, host), images)


def service_token(settings: Settings) -> str:
    """The token services show each other: ``api.service_token``, else the secret in
    ``<data_dir>/service-token``, made (0600) by whichever process needs it first."""
    if settings.api.service_token:
        return settings.api.service_token
    path = settings.data_dir / "service-token"
    tighten([path])
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        # Written whole under a private name, then linked into place: a process racing
        # this one either wins the link or reads the winner's complete file.
        fd, draft = tempfile.mkstemp(dir=path.parent, prefix=".service-token.")
        try:
            with os.fdopen(fd, "w") as file:  # mkstemp makes it 0600
                file.write(secrets.token_urlsafe(32) + "\n")
            with contextlib.suppress(FileExistsError):
                os.link(draft, path)
        finally:
            os.unlink(draft)
    return path.read_text().strip()


def image_api_url(settings: Settings) -> str:
    """Where computes reach the image API."""
    return settings.compute.image_api_url or settings.api.url


def libvirt_config(settings: Settings, host: str) -> LibvirtDriverConfig:
    """The libvirt driver's settings, with defaults resolved against the data dir."""
    from strato.virt.imagecache import DiskSettings
    from strato.virt.libvirt.driver import LibvirtDriverConfig

    lv = settings.compute.libvirt
    return LibvirtDriverConfig(
        host=HostName(host), uri=lv.uri, virt_type=lv.virt_type,
        kvm_probe_timeout=lv.kvm_probe_timeout,
        instances_path=lv.instances_path or settings.data_dir / "instances",
        domain_prefix=lv.domain_prefix, machine_type=lv.machine_type,
        disks=DiskSettings(backend=lv.images_type, force_raw_images=lv.force_raw_images,
                           preallocate=lv.preallocate_images),
        force_config_drive=lv.force_config_drive, config_drive_bus=lv.config_drive_bus,
        spawn_timeout=lv.spawn_timeout, clean_shutdown_timeout=lv.clean_shutdown_timeout,
        boot_slots=lv.boot_slots, boot_cpu_seconds=lv.boot_cpu_seconds,
        reserved_host_memory_mb=lv.reserved_host_memory_mb,
        instance_overhead_mb=lv.instance_overhead_mb,
        image_cache_max_age=lv.image_cache_max_age,
        image_cache_interval=lv.image_cache_interval, kernel_cmdline=lv.kernel_cmdline)


async def open_database(settings: Settings, *, migrate: bool = False) -> SqlDatabase:
    """Open the configured database, bringing its schema up to date first if asked."""
    _private_data_dir(settings)
    if migrate:
        await upgrade(settings.database_url)
    return await SqlDatabase.open(settings.database_url,
                                  service_down_time=settings.scheduler.service_down_time)


def _private_data_dir(settings: Settings) -> None:
    """The data directory lists nothing to others; the default SQLite database (it holds
    password hashes) and clouds.yaml are their owner's alone (SQLite makes its -wal and
    -shm files with the database's mode)."""
    private_dir(settings.data_dir, DATA_DIR_MODE)
    tighten([settings.data_dir / "clouds.yaml"])  # the admin password
    if settings.db.url is None:
        database = private_file(settings.data_dir / "strato.db")
        tighten(database.with_name(database.name + suffix) for suffix in ("-wal", "-shm"))


async def _heartbeat(db: Database, binary: str, topic: str, stop: asyncio.Event,
                     interval: float) -> None:
    host = HostName(socket.gethostname())
    while not stop.is_set():
        # A failed heartbeat (the database is down) is logged and tried at the next tick:
        # the service keeps serving, and shows as up again once the database is back.
        try:
            await db.services.heartbeat(binary=binary, host=host, topic=topic)
        except StratoError as exc:
            logger.warning("%s heartbeat failed: %s", binary, exc)
        except Exception:  # a bug in one tick must not stop the service
            logger.exception("%s heartbeat failed", binary)
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def _serve_until_stopped(settings: Settings, db: Database, bus: Bus, *, topic: str,
                              handlers: HandlerTable, stop: asyncio.Event) -> None:
    """Serve ``topic`` with ``handlers`` and record heartbeats until ``stop``; then stop
    consuming, waiting for the handlers in flight."""
    sub = await bus.serve(Target(topic), handlers)
    try:
        await _heartbeat(db, f"strato-{topic}", topic, stop, settings.compute.report_interval)
    finally:
        await sub.stop()


async def run_conductor(settings: Settings, db: Database, bus: Bus,
                        stop: asyncio.Event) -> None:
    """Serve the conductor topic until ``stop``."""
    boot = BootDeps(db=db, scheduler=SchedulerClient(bus, settings.rpc.call_timeout),
                    compute=ComputeClient(bus), max_attempts=settings.scheduler.max_attempts)
    deps = conductor_service.ConductorDeps(db=db, boot=boot, bus=bus)
    deadline = DeadlineDeps(db=db, timeout=settings.scheduler.build_timeout)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(watch_builds(deadline, stop))
        await _serve_until_stopped(settings, db, bus, topic=CONDUCTOR_TOPIC,
                                   handlers=conductor_service.handlers(deps), stop=stop)


async def run_scheduler(settings: Settings, db: Database, bus: Bus,
                        stop: asyncio.Event) -> None:
    """Serve the scheduler topic until ``stop``."""
    deps = scheduler_deps(settings, db)
    fanout = await bus.subscribe(SCHEDULER_FANOUT, scheduler_service.fanout_handlers(deps))
    try:
        await _serve_until_stopped(settings, db, bus, topic=SCHEDULER_TOPIC,
                                   handlers=scheduler_service.handlers(deps), stop=stop)
    finally:
        await fanout.stop()


def scheduler_deps(settings: Settings, db: Database) -> scheduler_service.SchedulerDeps:
    """A scheduler configured by ``settings.scheduler`` (``ValueError`` for an unknown
    filter name, at start-up rather than at the first request)."""
    sched = settings.scheduler
    policy = scheduler_service.SchedulerPolicy(
        filters=sched.enabled_filters, multipliers=sched.multipliers,
        host_subset_size=sched.host_subset_size, alternates=max(0, sched.max_attempts - 1))
    cache = CacheSettings(service_down_time=sched.service_down_time,
                          refresh_interval=sched.host_refresh_interval,
                          full_refresh_interval=sched.host_full_refresh_interval,
                          margin=sched.host_refresh_margin)
    return scheduler_service.SchedulerDeps(db, policy, cache)


@dataclass(frozen=True, slots=True)
class ComputeSpec:
    """One compute host to run: its name and (optionally) a ready driver and data plane."""

    host: str
    driver: VirtDriver | None = None
    network: HostNetwork | None = None


def make_host_network(settings: Settings, host: str, driver: VirtDriver,
                      conductor: ConductorClient) -> HostNetwork:
    """The data plane ``network.data_plane`` asks for (auto: Linux bridges under the
    libvirt driver, the in-memory fake under the fake driver)."""
    kind = settings.network.data_plane
    if kind == "auto":
        kind = "fake" if isinstance(driver, FakeDriver) else "linuxbridge"
    if kind == "fake":
        return FakeHostNetwork()
    return LinuxBridgeHost(HostName(host), conductor,
                           firewall=Firewall(settings.network.firewall_table))


async def _resync_network(network: HostNetwork, interval: float, stop: asyncio.Event) -> None:
    """A full data-plane pass every ``interval`` seconds (pushed changes come sooner)."""
    ctx = admin_context()
    while not stop.is_set():
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)
        if stop.is_set():
            return
        try:
            await network.refresh(ctx, full=True)
        except StratoError as exc:
            logger.warning("network resync failed: %s", exc)
        except Exception:  # never stop the host: the next pass tries again
            logger.exception("network resync failed")


async def run_compute(settings: Settings, bus: Bus, spec: ComputeSpec,
                      stop: asyncio.Event,
                      registry: dict[str, ComputeDeps] | None = None) -> None:
    """Serve ``compute.<host>`` until ``stop``; the compute never touches the database.
    ``registry`` (embedded mode) gets the compute's collaborators, for inspection."""
    driver = spec.driver or make_driver(settings, spec.host)
    await driver.start()
    conductor = ConductorClient(bus, settings.rpc.call_timeout)
    network = spec.network or make_host_network(settings, spec.host, driver, conductor)
    deps = ComputeDeps(host=HostName(spec.host), driver=driver, conductor=conductor,
                       tracker=ResourceTracker(), locks=KeyedLocks(),
                       builds=asyncio.Semaphore(settings.compute.max_concurrent_builds),
                       network=network)
    if registry is not None:
        registry[spec.host] = deps
    # Know our capacity before taking builds, so the tracker can check claims.
    deps.tracker.update_capacities(tuple(await driver.node_capacities()))
    # Reconcile what a previous run left (interrupted builds and deletes, the tracker's
    # account, unknown guests) before taking any message.
    await compute_host.init_host(deps, stop)
    # The boot watchers' group is open while the compute takes messages.
    async with deps.watchers.open():
        sub = await bus.serve(Target(COMPUTE_TOPIC, server=spec.host),
                              compute_service.handlers(deps))
        fanout = await bus.subscribe(NETWORK_FANOUT, compute_service.network_handlers(deps))
        try:
            async with asyncio.TaskGroup() as tg:
                tg.create_task(_resync_network(network, settings.network.resync_interval,
                                               stop))
                await compute_host.run_periodic_tasks(deps, stop, compute_host.HostIntervals(
                    report=settings.compute.report_interval,
                    resource_audit=settings.compute.resource_audit_interval,
                    sync_power_state=settings.compute.sync_power_state_interval,
                    reclaim=settings.api.reclaim_instance_interval))
        finally:
            await fanout.stop()
            await sub.stop()
            await deps.watchers.stop()
            await network.close()
            await driver.close()


def wants_dhcp_agent(settings: Settings, drivers: Sequence[VirtDriver]) -> bool:
    """``network.dhcp_agent``; auto: when a compute here runs real guests."""
    if settings.network.dhcp_agent != "auto":
        return settings.network.dhcp_agent == "on"
    return any(not isinstance(d, FakeDriver) for d in drivers)


async def run_dhcp_agent(settings: Settings, db: Database, bus: Bus,
                         stop: asyncio.Event) -> None:
    """Serve DHCP for every network (dnsmasq per network, in its namespace) until
    ``stop``: a pass at start, on every network fanout notice, and every resync interval.
    On stop every dnsmasq and namespace of this agent is removed."""
    agent = DhcpAgent(networks=db.networks, host=settings.compute.host,
                      state_dir=settings.network.dhcp_state_dir)
    wake = asyncio.Event()

    async def changed(_ctx: Any, _msg: NetworksChanged) -> None:
        wake.set()

    fanout = await bus.subscribe(NETWORK_FANOUT, {NetworksChanged: changed})
    try:
        while not stop.is_set():
            wake.clear()
            try:
                await agent.sync()
            except StratoError as exc:
                logger.warning("DHCP agent pass failed: %s", exc)
            except Exception:  # never stop the agent (nor `strato up`): the next pass retries
                logger.exception("DHCP agent pass failed")
            await _first_of(wake, stop, timeout=settings.network.resync_interval)
    finally:
        await fanout.stop()
        await agent.stop()


async def _first_of(*events: asyncio.Event, timeout: float) -> None:  # noqa: ASYNC109
    """Until one of ``events`` is set, or ``timeout`` seconds."""
    waiters = [asyncio.create_task(e.wait()) for e in events]
    try:
        await asyncio.wait(waiters, timeout=timeout, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for waiter in waiters:
            waiter.cancel()
        await asyncio.gather(*waiters, return_exceptions=True)


async def run_api(settings: Settings, db: Database, bus: Bus, stop: asyncio.Event) -> None:
    """Serve the REST API on ``settings.api.listen`` until ``stop``."""
    import uvicorn

    app = await create_api(settings, db, bus)
    host, _, port = settings.api.listen.rpartition(":")
    config = uvicorn.Config(app, host=host or "127.0.0.1", port=int(port), log_config=None,
                            lifespan="on", access_log=False)
    server = uvicorn.Server(config)
    async with asyncio.TaskGroup() as tg:
        tg.create_task(server.serve())
        try:
            await stop.wait()
        finally:
            server.should_exit = True


async def create_api(settings: Settings, db: Database, bus: Bus) -> ASGIApp:
    """The ASGI application over ``db`` and ``bus``; the admin token acts as the
    ``admin`` user in the ``admin`` project (both created when missing)."""
    from strato.api.app import create_app
    from strato.api.auth import KeystoneAuth, StaticTokenAuth
    from strato.api.deps import ApiDeps
    from strato.api.policies import load_policy
    from strato.image.store import ImageStore
    from strato.image.upload import sweep_uploads
    from strato.seed import seed_admin

    user, project = await seed_admin(db, password=settings.identity.admin_password)

    # The service token has the ``service`` role alone: the policy lets it read and
    # download images (what computes need), nothing else.
    static = StaticTokenAuth(
        settings.api.admin_token, admin=(user.id, project.id),
        tokens={service_token(settings): (SERVICE_USER, project.id, (SERVICE_ROLE,))})
    auth = KeystoneAuth(_token_service(settings, db), fallback=static)
    images = ImageStore(settings.data_dir / "images")
    await sweep_uploads(db.images, images)  # uploads a killed API left saving
    deps = ApiDeps(db=db, bus=bus, image_store=images, auth=auth, settings=settings.api,
                   policy=load_policy(settings.identity.policy_file))
    return create_app(deps, settings.api)


def _token_service(settings: Settings, db: Database) -> TokenService:
    """Fernet tokens over the key repository (created, with its first keys, if missing)."""
    from strato.identity.fernet import KeyRepository, TokenCodec
    from strato.identity.lockout import LockoutPolicy, LoginGuard
    from strato.identity.service import TokenService

    identity = settings.identity
    keys = KeyRepository(settings.fernet_key_repository, identity.max_active_keys)
    keys.ensure()
    guard = LoginGuard(LockoutPolicy(
        failure_attempts=identity.lockout_failure_attempts, duration=identity.lockout_duration,
        source_failures=identity.failed_login_source_limit,
        source_window=identity.failed_login_source_window))
    return TokenService(db.identity, TokenCodec(keys), clock=db.now, guard=guard,
                        expiration=timedelta(seconds=identity.token_expiration))


@dataclass
class Cloud:
    """Every role of strato running in this process (see :func:`embedded`)."""

    settings: Settings
    db: SqlDatabase
    bus: Bus
    app: ASGIApp
    stop: asyncio.Event
    drivers: dict[str, VirtDriver] = field(default_factory=dict)
    computes: dict[str, ComputeDeps] = field(default_factory=dict)


@contextlib.asynccontextmanager
async def embedded(settings: Settings, computes: Sequence[ComputeSpec] = (),
                   *, serve_http: bool = False,
                   on_ready: Callable[[Cloud], None] | None = None,
                   bus: Bus | None = None) -> AsyncIterator[Cloud]:
    """Run conductor, scheduler and the given computes (default: one, named after
    ``settings.compute.host``) in this process; yield once every compute has reported.

    The API application is built (``cloud.app``) and served over HTTP only when
    ``serve_http`` is set; tests drive it in-process instead. Every role talks over
    ``bus`` when one is given (tests pass a bus that loses messages on purpose; the cloud
    closes it at the end), else over the bus ``settings.rpc.transport_url`` names.
    """
    computes = computes or (ComputeSpec(settings.compute.host),)
    settings.data_dir.mkdir(parents=True, exist_ok=True)
    db = await open_database(settings, migrate=True)
    if bus is None:
        bus = await open_bus(settings.rpc.transport_url)
    stop = asyncio.Event()
    app = await create_api(settings, db, bus)
    # Computes fetch images through the image API: over HTTP when it is served, else
    # straight into the application in this process.
    images = None if serve_http else _in_process_images(settings, app)
    specs = [ComputeSpec(c.host, c.driver or make_driver(settings, c.host, images=images))
             for c in computes]
    cloud = Cloud(settings=settings, db=db, bus=bus, app=app,
                  stop=stop, drivers={s.host: s.driver for s in specs if s.driver})
    try:
        async with asyncio.TaskGroup() as tg:
            # The conductor and scheduler stop last: a compute finishing a build (or the
            # API an operation) while it stops still needs them to answer.
            core_stop = asyncio.Event()
            tg.create_task(run_conductor(settings, db, bus, core_stop))
            tg.create_task(run_scheduler(settings, db, bus, core_stop))
            edge = [tg.create_task(run_compute(settings, bus, spec, stop, cloud.computes))
                    for spec in specs]
            if wants_dhcp_agent(settings, [s.driver for s in specs if s.driver]):
                edge.append(tg.create_task(run_dhcp_agent(settings, db, bus, stop)))
            if serve_http:
                edge.append(tg.create_task(run_api(settings, db, bus, stop)))
            try:
                await _wait_for_computes(db, {s.host for s in specs})
                if on_ready:
                    on_ready(cloud)
                yield cloud
            finally:
                stop.set()
                try:
                    await asyncio.wait(edge)
                finally:
                    core_stop.set()
    finally:
        await bus.close()
        await db.close()


def _in_process_images(settings: Settings, app: ASGIApp) -> ImageSource:
    import httpx

    from strato.image.client import ImageClient, ImageServiceSource

    return ImageServiceSource(ImageClient(
        "http://strato.internal", service_token(settings),
        transport=httpx.ASGITransport(app=app)))


async def _wait_for_computes(db: Database, hosts: set[str], timeout: float = 30.0) -> None:
    async with asyncio.timeout(timeout):
        while True:
            reported = {n.host for n in await db.nodes.usages()}
            if hosts <= reported:
                return
            await asyncio.sleep(0.05)
