"""Building one instance on this host, and tearing one down.

The order is the seeds' ``_build_and_run_instance``: claim against the host's real
capacity, then task_state networking -> block_device_mapping -> spawning, spawn, and
vm_state active. Every state write is a compare-and-swap on the task state the build
expects, so a delete that lands meanwhile (task_state deleting) makes the next write fail
and the build cleans up instead of leaving an ACTIVE ghost.

Failures split as in Nova: ``RescheduleBuild`` (and anything unexpected from the driver)
cleans up here and asks the conductor for the next host; ``AbortBuild`` and other domain
errors put the instance in ERROR with a fault.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, TypeVar

from strato.compute.locks import KeyedLocks
from strato.compute.messages import BuildAndRunInstance, TerminateInstance
from strato.compute.notify import Notifier, Phase
from strato.compute.tracker import ResourceTracker
from strato.conductor.messages import RescheduleInstance
from strato.domain.actions import EventResult, TimedEvent
from strato.domain.context import RequestContext
from strato.domain.errors import (
    AbortBuild,
    Conflict,
    InvalidState,
    NotFound,
    RescheduleBuild,
    StratoError,
    Unavailable,
)
from strato.domain.ids import HostName, InstanceId
from strato.domain.instances import (
    BUILD_TASKS,
    Fault,
    Instance,
    InstanceChanges,
    PowerState,
    TaskState,
    VmState,
)
from strato.domain.networks import PortStatus, Vif
from strato.domain.requests import Destination
from strato.log import bind_instance

if TYPE_CHECKING:
    from strato.conductor.client import ConductorClient
    from strato.network.host import HostNetwork
    from strato.virt.driver import VirtDriver

__all__ = ["BOOT_EVENT", "BUILD_EVENT", "BUILD_STEP_EVENTS", "CLAIM_EVENT", "ComputeDeps",
           "IMAGE_EVENT", "NETWORKS_EVENT", "PLUG_EVENT", "SPAWN_EVENT", "TERMINATE_EVENT",
           "build_and_run_instance", "stop_watchers", "terminate_instance"]

logger = logging.getLogger(__name__)

BUILD_EVENT = "compute__do_build_and_run_instance"
TERMINATE_EVENT = "compute_terminate_instance"

# The build's steps, each an event of its own inside BUILD_EVENT (a build timeline's
# bars). They are timed here and reach the conductor together, in one message at the end
# of the try: no start and finish call per step.
CLAIM_EVENT = "compute_claim_resources"  # the host's claim and the group policy check
NETWORKS_EVENT = "compute_allocate_networks"  # the ports, while the image is prepared
IMAGE_EVENT = "compute_prepare_image"  # the image fetched or found in the host's cache
PLUG_EVENT = "compute_plug_vifs"
SPAWN_EVENT = "compute_spawn"
# From the spawn's return (the guest started) to the guest's first console output. The
# instance is ACTIVE as soon as the guest runs (as in Nova); when its console is still
# empty then, a watcher records this step later, in a cast of its own.
BOOT_EVENT = "compute_boot"
BOOT_POLL_INTERVAL = 0.25
BUILD_STEP_EVENTS = (CLAIM_EVENT, NETWORKS_EVENT, IMAGE_EVENT, PLUG_EVENT, SPAWN_EVENT,
                     BOOT_EVENT)

T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, StratoError):
        return exc.message
    return f"{type(exc).__name__}: {exc}"


class _Step:
    """One step being timed; it finishes once, by :meth:`done` or when its block ends."""

    __slots__ = ("_finished", "_name", "_seq", "_start", "_timeline")

    def __init__(self, timeline: _Timeline, name: str, seq: int) -> None:
        self._timeline = timeline
        self._name = name
        self._seq = seq
        self._start = timeline.now()
        self._finished = False

    def done(self) -> None:
        """The step succeeded (what its block does next belongs to other steps)."""
        self.finish(None)

    def finish(self, exc: BaseException | None) -> None:
        if self._finished:
            return
        self._finished = True
        self._timeline.add(self._seq, self._timeline.event(
            self._name, self._start, None if exc is None else _error_text(exc)))


class _Timeline:
    """The build try's steps, timed on this host's clock (UTC): a step that raised is an
    Error with the exception's message, a step never reached is not there."""

    def __init__(self, clock: Callable[[], datetime], host: HostName) -> None:
        self._clock = clock
        self.host = host
        self._began = 0
        self._events: list[tuple[int, TimedEvent]] = []

    def now(self) -> datetime:
        # As the database takes times: aware ones in UTC, naive ones as UTC already.
        now = self._clock()
        return now.replace(tzinfo=UTC) if now.tzinfo is None else now.astimezone(UTC)

    def add(self, seq: int, event: TimedEvent) -> None:
        self._events.append((seq, event))

    def begin(self, name: str) -> _Step:
        self._began += 1
        return _Step(self, name, self._began)

    @contextlib.contextmanager
    def step(self, name: str) -> Iterator[_Step]:
        """Time the block as the step ``name`` (or up to its ``done()``)."""
        with self._closing(self.begin(name)) as step:
            yield step

    def timed(self, name: str, work: Awaitable[T]) -> Coroutine[Any, Any, T]:
        """``work`` timed as the step ``name`` from now, not from when a task first runs
        it (so steps started side by side keep their order)."""
        step = self.begin(name)

        async def run() -> T:
            with self._closing(step):
                return await work

        return run()

    @staticmethod
    @contextlib.contextmanager
    def _closing(step: _Step) -> Iterator[_Step]:
        try:
            yield step
        except BaseException as exc:
            step.finish(exc)
            raise
        step.finish(None)

    def event(self, name: str, start: datetime, error: str | None = None) -> TimedEvent:
        """The step ``name`` from ``start`` to now: a success, or an Error with
        ``error``."""
        return TimedEvent(event=name, start_time=start, finish_time=self.now(),
                          result=EventResult.SUCCESS if error is None else EventResult.ERROR,
                          traceback=error, host=self.host)

    def record(self, name: str, start: datetime) -> None:
        """A successful step timed elsewhere, from ``start`` to now."""
        self._began += 1
        self.add(self._began, self.event(name, start))

    def events(self) -> tuple[TimedEvent, ...]:
        """The finished steps in the order they began."""
        return tuple(event for _, event in sorted(self._events, key=lambda e: e[0]))


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeDeps:
    host: HostName
    driver: VirtDriver
    conductor: ConductorClient
    tracker: ResourceTracker
    locks: KeyedLocks
    builds: asyncio.Semaphore
    network: HostNetwork
    clock: Callable[[], datetime] = _utcnow
    # Seconds a watcher waits for a new guest's first console output (the boot step).
    boot_watch_timeout: float = 120.0
    # The running boot watchers; the compute cancels them when it stops.
    watchers: set[asyncio.Task[None]] = field(default_factory=set)


def _notifier(deps: ComputeDeps) -> Notifier:
    # Notifications leave on the bus this host already talks to the conductor over.
    return Notifier(deps.conductor.bus, deps.host)


async def build_and_run_instance(ctx: RequestContext, msg: BuildAndRunInstance, *,
                                 deps: ComputeDeps) -> None:
    """Build the instance (one at a time per instance, at most N per host)."""
    iid = msg.request.instance_id
    with bind_instance(iid):
        async with deps.locks.hold(iid), deps.builds:
            if not await _awaits_this_build(ctx, msg, deps):
                return
            await deps.conductor.start_event(ctx, iid, BUILD_EVENT, deps.host)
            logger.info("instance.build.start on %s", msg.node)
            await _notifier(deps).create_start(ctx, msg.request, msg.node)
            try:
                built = await _build(ctx, msg, deps)
            except (InvalidState, NotFound) as exc:
                await _abandon(ctx, msg, deps, exc)
            except RescheduleBuild as exc:
                await _reschedule(ctx, msg, deps, exc.message)
            except StratoError as exc:
                await _abort(ctx, msg, deps, exc.message)
            except Exception as exc:  # a driver bug may not be this host's alone: retry
                logger.exception("unexpected error while building")
                await _reschedule(ctx, msg, deps, f"{type(exc).__name__}: {exc}")
            else:
                logger.info("instance.build.done")
                await deps.conductor.finish_event(ctx, iid, BUILD_EVENT, EventResult.SUCCESS)
                await _notifier(deps).create_end(ctx, built)


async def _awaits_this_build(ctx: RequestContext, msg: BuildAndRunInstance,
                             deps: ComputeDeps) -> bool:
    """Whether the instance waits for this very build: still scheduling, on this host.

    A build message can come more than once (RabbitMQ redelivers what a consumer did
    not ack before it stopped). A repeat finds the instance past scheduling (building
    here under the lock it waited for, built, or failed), or on another host (a stale
    try after a reschedule: a reschedule never returns to a host, so the host names the
    try), and must change nothing: no claim, no release, no guest, no state. A deleted
    instance goes on, so that the build frees what the instance still held."""
    current = await _current(ctx, deps, msg.request.instance_id)
    if current is None or (current.host == deps.host
                           and current.task_state is TaskState.SCHEDULING):
        return True
    logger.warning("instance.build.duplicate: try %d for %s ignored; the instance is "
                   "on %s in vm_state %s, task_state %s", msg.request.retry.attempts,
                   deps.host, current.host, current.vm_state, current.task_state)
    return False


async def _build(ctx: RequestContext, msg: BuildAndRunInstance,
                 deps: ComputeDeps) -> Instance:
    """The build try; its steps' timeline goes to the conductor (one cast) when it ends,
    built or failed, before the outcome is handled."""
    timeline = _Timeline(deps.clock, deps.host)
    iid = msg.request.instance_id
    try:
        built, started = await _build_steps(ctx, msg, deps, timeline)
    except asyncio.CancelledError:
        raise  # the service is stopping: this try did not end, its restart closes it
    except BaseException:
        await deps.conductor.record_events(ctx, iid, timeline.events())
        raise
    booted = await _console_started(deps, iid)
    if booted:
        timeline.record(BOOT_EVENT, started)
    await deps.conductor.record_events(ctx, iid, timeline.events())
    if booted is False:
        _watch_boot(ctx, deps, iid, started, timeline)
    return built


async def _console_started(deps: ComputeDeps, iid: InstanceId) -> bool | None:
    """Whether the guest has written to its console yet; None when it cannot be read
    (the guest is gone)."""
    try:
        return bool((await deps.driver.console_output(iid, max_bytes=256)).strip())
    except (StratoError, OSError) as exc:
        logger.info("console not readable: %s", exc)
        return None


def _watch_boot(ctx: RequestContext, deps: ComputeDeps, iid: InstanceId, started: datetime,
                timeline: _Timeline) -> None:
    """Record the boot step once the new guest's console shows its first output (or
    as an Error when it stays empty for ``boot_watch_timeout`` seconds)."""

    async def watch() -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + deps.boot_watch_timeout
        error: str | None = None
        while True:
            await asyncio.sleep(BOOT_POLL_INTERVAL)
            booted = await _console_started(deps, iid)
            if booted is None:
                return  # deleted (or its host lost it): nothing boots any more
            if booted:
                break
            if loop.time() >= deadline:
                error = (f"the guest wrote nothing on its serial console in "
                         f"{deps.boot_watch_timeout:g} s")
                break
        try:
            await deps.conductor.record_events(
                ctx, iid, (timeline.event(BOOT_EVENT, started, error),))
        except StratoError as exc:
            logger.warning("could not record the boot step: %s", exc)

    task = asyncio.create_task(watch(), name=f"boot-watch-{iid}")
    deps.watchers.add(task)
    task.add_done_callback(deps.watchers.discard)


async def stop_watchers(deps: ComputeDeps) -> None:
    """Cancel the boot watchers (the compute is stopping)."""
    watchers = list(deps.watchers)
    for task in watchers:
        task.cancel()
    await asyncio.gather(*watchers, return_exceptions=True)


async def _build_steps(ctx: RequestContext, msg: BuildAndRunInstance, deps: ComputeDeps,
                       timeline: _Timeline) -> tuple[Instance, datetime]:
    """The built instance and when its guest started (the boot step's start)."""
    req = msg.request
    need = req.flavor.resources + deps.driver.instance_overhead(req.flavor)
    with (timeline.step(CLAIM_EVENT) as claim,
          deps.tracker.claim(req.instance_id, msg.node, need)):
        # The seeds' _validate_instance_group_policy: two requests can pass the scheduler
        # for one anti-affinity group at once; the check and the move to networking are
        # one transaction, so only the first of them goes on (the other is rescheduled).
        violation = await deps.conductor.start_build(ctx, req.instance_id, deps.host)
        if violation is not None:
            raise RescheduleBuild(f"server group policy violated: {violation}")
        claim.done()
        vifs = await _networks_and_image(ctx, msg, deps, timeline)
        dest = Destination(host=deps.host, node=msg.node)
        try:
            await _move(ctx, deps, req.instance_id, TaskState.NETWORKING,
                        TaskState.BLOCK_DEVICE_MAPPING)
            await _move(ctx, deps, req.instance_id, TaskState.BLOCK_DEVICE_MAPPING,
                        TaskState.SPAWNING)
            with timeline.step(PLUG_EVENT):
                await _plug(ctx, deps, vifs)
            with timeline.step(SPAWN_EVENT):
                await deps.driver.spawn(req, node=msg.node, vifs=vifs)
            started = timeline.now()
            info = await deps.driver.get_info(req.instance_id)
            built = await _set_active(ctx, deps, req.instance_id, {
                "vm_state": VmState.ACTIVE, "task_state": None,
                "power_state": info.power_state, "launched_at": deps.clock()})
        except BaseException as exc:
            await deps.driver.destroy(req.instance_id)
            await deps.network.unplug(ctx, vifs)
            # The ports the build made go, the user's are unbound (and DOWN): the next
            # host (or nobody, for a failed build) starts from the user's request again.
            await deps.conductor.release_networks(ctx, req.instance_id)
            if isinstance(exc, RescheduleBuild) or (isinstance(exc, Exception)
                                                    and not isinstance(exc, StratoError)):
                # This host failed a build another host may not (the build-failure
                # weigher puts it last for a while); an AbortBuild is no host's fault.
                await deps.conductor.record_build(ctx, dest, succeeded=False)
            raise
        await deps.conductor.record_build(ctx, dest, succeeded=True)
        return built, started


# How often the move to ACTIVE is tried while the conductor cannot be reached, and the
# pause between tries (the bus reconnects meanwhile).
ACTIVE_TRIES = 4
ACTIVE_RETRY_PAUSE = 2.0


async def _set_active(ctx: RequestContext, deps: ComputeDeps, iid: InstanceId,
                      changes: InstanceChanges) -> Instance:
    """The spawned instance moved to ACTIVE. The guest runs by now, so a lost reply is
    not a failed build: the conductor may have stored the change and its answer got lost
    (the broker restarted). So an ``Unavailable`` is tried again; when a later try finds
    the instance no longer spawning, it is read back, and if it is ACTIVE on this host the
    earlier try landed and the build succeeded. Anything else is the build's failure."""
    for attempt in range(ACTIVE_TRIES):
        try:
            return await deps.conductor.update_instance(
                ctx, iid, changes, expected_task_state=(TaskState.SPAWNING,))
        except Unavailable as exc:
            if attempt == ACTIVE_TRIES - 1:
                raise
            logger.warning("moving to ACTIVE: %s; trying again", exc)
            await asyncio.sleep(ACTIVE_RETRY_PAUSE)
        except InvalidState:
            if attempt == 0:
                raise
            current = await _current(ctx, deps, iid)
            if (current is not None and current.vm_state == VmState.ACTIVE
                    and current.task_state is None and current.host == deps.host):
                logger.info("the move to ACTIVE had landed; its reply was lost")
                return current
            raise
    raise AssertionError("unreachable")


async def _networks_and_image(ctx: RequestContext, msg: BuildAndRunInstance,
                              deps: ComputeDeps, timeline: _Timeline) -> list[Vif]:
    """Allocate the instance's ports while the image downloads (the seeds'
    ``_build_networks_for_instance`` runs asynchronously beside the block devices). A
    full network aborts the build (Nova's NoMoreFixedIps, no reschedule: every host would
    meet it); whatever one half held is released when the other fails."""
    req = msg.request
    allocation = asyncio.create_task(timeline.timed(
        NETWORKS_EVENT,
        deps.conductor.allocate_networks(ctx, req, deps.host, req.hints.availability_zone)))
    try:
        with timeline.step(IMAGE_EVENT):
            await deps.driver.prepare_image(req)
    except BaseException:
        with contextlib.suppress(Exception):
            await allocation
        await deps.conductor.release_networks(ctx, req.instance_id)
        raise
    try:
        return await allocation
    except (Conflict, NotFound) as exc:
        # A full subnet (IpAddressGenerationFailure), a port taken meanwhile, a network
        # deleted: the same on every host.
        raise AbortBuild(f"Failed to allocate the network(s), not rescheduling: "
                         f"{exc.message}") from exc


async def _plug(ctx: RequestContext, deps: ComputeDeps, vifs: Sequence[Vif]) -> None:
    """Plug the ports on this host; they are ACTIVE from then on (Neutron's status)."""
    await deps.network.plug(ctx, vifs)
    await deps.conductor.set_ports_status(ctx, tuple(v.port_id for v in vifs),
                                          PortStatus.ACTIVE)


async def _move(ctx: RequestContext, deps: ComputeDeps, iid: InstanceId,
                expected: TaskState, new: TaskState) -> None:
    changes: InstanceChanges = {"task_state": new}
    await deps.conductor.update_instance(ctx, iid, changes, expected_task_state=(expected,))


async def _abandon(ctx: RequestContext, msg: BuildAndRunInstance, deps: ComputeDeps,
                   exc: StratoError) -> None:
    """The instance was deleted under the build: free what it held, build nothing."""
    iid = msg.request.instance_id
    logger.info("instance.build.abandoned: %s", exc)
    deps.tracker.release(iid)
    await deps.conductor.release_allocations(ctx, iid)
    await deps.conductor.finish_event(ctx, iid, BUILD_EVENT, EventResult.ERROR,
                                      f"instance deleted during build: {exc}")
    fault = Fault.internal(exc.message, deps.clock())
    current = await _current(ctx, deps, iid)
    if current is None:  # deleted: it is no longer anywhere
        await _notifier(deps).create_error(ctx, msg.request, msg.node, fault,
                                           vm_state=VmState.DELETED)
    else:
        await _notifier(deps).instance_action(ctx, "create", Phase.ERROR, current,
                                              fault=fault)


async def _reschedule(ctx: RequestContext, msg: BuildAndRunInstance, deps: ComputeDeps,
                      error: str) -> None:
    iid = msg.request.instance_id
    logger.warning("instance.build.failed, rescheduling: %s", error)
    try:
        await deps.conductor.update_instance(
            ctx, iid, {"task_state": TaskState.SCHEDULING, "host": None, "node": None},
            expected_task_state=BUILD_TASKS)
    except (InvalidState, NotFound) as exc:
        await _abandon(ctx, msg, deps, exc)
        return
    await deps.conductor.finish_event(ctx, iid, BUILD_EVENT, EventResult.ERROR, error)
    fault = Fault.internal(error, deps.clock())
    await _notifier(deps).create_error(ctx, msg.request, msg.node, fault,
                                       vm_state=VmState.BUILDING,
                                       task_state=TaskState.SCHEDULING)
    await deps.conductor.reschedule(ctx, RescheduleInstance(
        request=msg.request, failed_host=deps.host, alternates=msg.alternates, error=error))


async def _abort(ctx: RequestContext, msg: BuildAndRunInstance, deps: ComputeDeps,
                 error: str) -> None:
    iid = msg.request.instance_id
    logger.warning("instance.build.failed, not rescheduling: %s", error)
    fault = Fault.internal(error, deps.clock())
    try:
        await deps.conductor.update_instance(
            ctx, iid, {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
            expected_task_state=BUILD_TASKS)
    except (InvalidState, NotFound):
        logger.info("instance deleted while its build failed")
    await deps.conductor.release_allocations(ctx, iid)
    await deps.conductor.finish_event(ctx, iid, BUILD_EVENT, EventResult.ERROR, error)
    await _notifier(deps).create_error(ctx, msg.request, msg.node, fault)


async def _current(ctx: RequestContext, deps: ComputeDeps, iid: InstanceId) -> Instance | None:
    """The instance as stored now, for a notification; None once it is deleted."""
    try:
        return await deps.conductor.get_instance(ctx, iid)
    except NotFound:
        return None


async def terminate_instance(ctx: RequestContext, msg: TerminateInstance, *,
                             deps: ComputeDeps) -> None:
    """Destroy the guest, free the host's claim, and mark the instance deleted."""
    iid = msg.instance_id
    with bind_instance(iid):
        async with deps.locks.hold(iid):
            await deps.conductor.start_event(ctx, iid, TERMINATE_EVENT, deps.host)
            instance = await _current(ctx, deps, iid)
            if instance is not None:
                await _notifier(deps).delete_start(ctx, instance)
            vifs = await deps.conductor.instance_vifs(ctx, iid)
            await deps.driver.destroy(iid)
            await deps.network.unplug(ctx, vifs)
            deps.tracker.release(iid)
            # Marks it deleted, and deletes (or unbinds) its ports in that transaction.
            await deps.conductor.soft_delete(ctx, iid)
            logger.info("instance.delete.done")
            await deps.conductor.finish_event(ctx, iid, TERMINATE_EVENT, EventResult.SUCCESS)
            if instance is not None:
                await _notifier(deps).delete_end(ctx, replace(
                    instance, vm_state=VmState.DELETED, task_state=None,
                    power_state=PowerState.NOSTATE, terminated_at=deps.clock(),
                    deleted=True))
