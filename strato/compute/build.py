"""Building one instance on this host.

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
import logging
from collections.abc import Awaitable, Sequence
from datetime import datetime
from typing import TypeVar

from strato.compute.deps import ComputeDeps, current_instance, notifier
from strato.compute.notify import Phase
from strato.compute.timeline import Timeline
from strato.domain.actions import EventResult
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
from strato.domain.ids import InstanceId
from strato.domain.instances import (
    BUILD_TASKS,
    Fault,
    Instance,
    InstanceChanges,
    TaskState,
    VmState,
)
from strato.domain.networks import PortStatus, Vif
from strato.domain.requests import Destination
from strato.log import bind_instance
from strato.rpc.contracts.compute import BuildAndRunInstance
from strato.rpc.contracts.conductor import RescheduleInstance

__all__ = ["BOOT_EVENT", "BUILD_EVENT", "BUILD_STEP_EVENTS", "CLAIM_EVENT", "IMAGE_EVENT",
           "NETWORKS_EVENT", "PLUG_EVENT", "SPAWN_EVENT", "build_and_run_instance"]

logger = logging.getLogger(__name__)

BUILD_EVENT = "compute__do_build_and_run_instance"

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
            await notifier(deps).create_start(ctx, msg.request, msg.node)
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
                await notifier(deps).create_end(ctx, built)


async def _awaits_this_build(ctx: RequestContext, msg: BuildAndRunInstance,
                             deps: ComputeDeps) -> bool:
    """Whether the instance waits for this very build: still scheduling, on this host.

    A build message can come more than once (RabbitMQ redelivers what a consumer did
    not ack before it stopped). A repeat finds the instance past scheduling (building
    here under the lock it waited for, built, or failed), or on another host (a stale
    try after a reschedule: a reschedule never returns to a host, so the host names the
    try), and must change nothing: no claim, no release, no guest, no state. A deleted
    instance goes on, so that the build frees what the instance still held."""
    current = await current_instance(ctx, deps, msg.request.instance_id)
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
    timeline = Timeline(deps.clock, deps.host)
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
                timeline: Timeline) -> None:
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

    deps.watchers.start(watch(), name=f"boot-watch-{iid}")


async def _build_steps(ctx: RequestContext, msg: BuildAndRunInstance, deps: ComputeDeps,
                       timeline: Timeline) -> tuple[Instance, datetime]:
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
            current = await current_instance(ctx, deps, iid)
            if (current is not None and current.vm_state == VmState.ACTIVE
                    and current.task_state is None and current.host == deps.host):
                logger.info("the move to ACTIVE had landed; its reply was lost")
                return current
            raise
    raise AssertionError("unreachable")


async def _networks_and_image(ctx: RequestContext, msg: BuildAndRunInstance,
                              deps: ComputeDeps, timeline: Timeline) -> list[Vif]:
    """Allocate the instance's ports while the image downloads (the seeds'
    ``_build_networks_for_instance`` runs asynchronously beside the block devices). A
    full network aborts the build (Nova's NoMoreFixedIps, no reschedule: every host would
    meet it); whatever one half held is released when the other fails."""
    req = msg.request
    # Neither half raises inside the group (that would cancel the other half): a failed
    # image (or the service stopping) waits for the allocation, then releases its ports.
    async with asyncio.TaskGroup() as group:
        allocation = group.create_task(_outcome(timeline.timed(
            NETWORKS_EVENT,
            deps.conductor.allocate_networks(ctx, req, deps.host,
                                             req.hints.availability_zone))))
        image_failure = await _failure(timeline.timed(IMAGE_EVENT,
                                                      deps.driver.prepare_image(req)))
    if image_failure is not None:
        await deps.conductor.release_networks(ctx, req.instance_id)
        raise image_failure
    vifs = allocation.result()
    if isinstance(vifs, (Conflict, NotFound)):
        # A full subnet (IpAddressGenerationFailure), a port taken meanwhile, a network
        # deleted: the same on every host.
        raise AbortBuild(f"Failed to allocate the network(s), not rescheduling: "
                         f"{vifs.message}") from vifs
    if isinstance(vifs, Exception):
        raise vifs
    return vifs


async def _outcome(work: Awaitable[T]) -> T | Exception:
    """What ``work`` returned, or the error it raised."""
    try:
        return await work
    except Exception as exc:
        return exc


async def _failure(work: Awaitable[None]) -> BaseException | None:
    """What ``work`` raised (a cancellation too), or None."""
    try:
        await work
    except BaseException as exc:
        return exc
    return None


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
    current = await current_instance(ctx, deps, iid)
    if current is None:  # deleted: it is no longer anywhere
        await notifier(deps).create_error(ctx, msg.request, msg.node, fault,
                                           vm_state=VmState.DELETED)
    else:
        await notifier(deps).instance_action(ctx, "create", Phase.ERROR, current,
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
    await notifier(deps).create_error(ctx, msg.request, msg.node, fault,
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
    await notifier(deps).create_error(ctx, msg.request, msg.node, fault)
