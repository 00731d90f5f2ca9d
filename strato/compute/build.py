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
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from strato.compute.locks import KeyedLocks
from strato.compute.messages import BuildAndRunInstance, TerminateInstance
from strato.compute.notify import Notifier, Phase
from strato.compute.tracker import ResourceTracker
from strato.conductor.messages import RescheduleInstance
from strato.domain.actions import EventResult
from strato.domain.context import RequestContext
from strato.domain.errors import InvalidState, NotFound, RescheduleBuild, StratoError
from strato.domain.ids import HostName, InstanceId
from strato.domain.instances import (
    Fault,
    Instance,
    InstanceChanges,
    PowerState,
    TaskState,
    VmState,
)
from strato.log import bind_instance

if TYPE_CHECKING:
    from strato.conductor.client import ConductorClient
    from strato.virt.driver import VirtDriver

__all__ = ["BUILD_EVENT", "ComputeDeps", "TERMINATE_EVENT", "build_and_run_instance",
           "terminate_instance"]

logger = logging.getLogger(__name__)

BUILD_EVENT = "compute__do_build_and_run_instance"
TERMINATE_EVENT = "compute_terminate_instance"
_IN_BUILD = (TaskState.SCHEDULING, TaskState.NETWORKING, TaskState.BLOCK_DEVICE_MAPPING,
             TaskState.SPAWNING)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeDeps:
    host: HostName
    driver: VirtDriver
    conductor: ConductorClient
    tracker: ResourceTracker
    locks: KeyedLocks
    builds: asyncio.Semaphore
    clock: Callable[[], datetime] = _utcnow


def _notifier(deps: ComputeDeps) -> Notifier:
    # Notifications leave on the bus this host already talks to the conductor over.
    return Notifier(deps.conductor.bus, deps.host)


async def build_and_run_instance(ctx: RequestContext, msg: BuildAndRunInstance, *,
                                 deps: ComputeDeps) -> None:
    """Build the instance (one at a time per instance, at most N per host)."""
    iid = msg.request.instance_id
    with bind_instance(iid):
        async with deps.locks.hold(iid), deps.builds:
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


async def _build(ctx: RequestContext, msg: BuildAndRunInstance,
                 deps: ComputeDeps) -> Instance:
    req = msg.request
    need = req.flavor.resources + deps.driver.instance_overhead(req.flavor)
    with deps.tracker.claim(req.instance_id, msg.node, need):
        await _move(ctx, deps, req.instance_id, TaskState.SCHEDULING, TaskState.NETWORKING)
        # Ports are allocated here once networks exist (their own issue).
        await _move(ctx, deps, req.instance_id, TaskState.NETWORKING,
                    TaskState.BLOCK_DEVICE_MAPPING)
        await _move(ctx, deps, req.instance_id, TaskState.BLOCK_DEVICE_MAPPING,
                    TaskState.SPAWNING)
        try:
            await deps.driver.spawn(req, node=msg.node)
            info = await deps.driver.get_info(req.instance_id)
            return await deps.conductor.update_instance(
                ctx, req.instance_id,
                {"vm_state": VmState.ACTIVE, "task_state": None,
                 "power_state": info.power_state, "launched_at": deps.clock()},
                expected_task_state=(TaskState.SPAWNING,))
        except BaseException:
            await deps.driver.destroy(req.instance_id)
            raise


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
    fault = Fault(code=500, message=exc.message[:255], details=exc.message,
                  created_at=deps.clock())
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
            expected_task_state=_IN_BUILD)
    except (InvalidState, NotFound) as exc:
        await _abandon(ctx, msg, deps, exc)
        return
    await deps.conductor.finish_event(ctx, iid, BUILD_EVENT, EventResult.ERROR, error)
    fault = Fault(code=500, message=error[:255], details=error, created_at=deps.clock())
    await _notifier(deps).create_error(ctx, msg.request, msg.node, fault,
                                       vm_state=VmState.BUILDING,
                                       task_state=TaskState.SCHEDULING)
    await deps.conductor.reschedule(ctx, RescheduleInstance(
        request=msg.request, failed_host=deps.host, alternates=msg.alternates, error=error))


async def _abort(ctx: RequestContext, msg: BuildAndRunInstance, deps: ComputeDeps,
                 error: str) -> None:
    iid = msg.request.instance_id
    logger.warning("instance.build.failed, not rescheduling: %s", error)
    fault = Fault(code=500, message=error[:255], details=error, created_at=deps.clock())
    try:
        await deps.conductor.update_instance(
            ctx, iid, {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
            expected_task_state=_IN_BUILD)
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
            await deps.driver.destroy(iid)
            deps.tracker.release(iid)
            await deps.conductor.soft_delete(ctx, iid)
            logger.info("instance.delete.done")
            await deps.conductor.finish_event(ctx, iid, TERMINATE_EVENT, EventResult.SUCCESS)
            if instance is not None:
                await _notifier(deps).delete_end(ctx, replace(
                    instance, vm_state=VmState.DELETED, task_state=None,
                    power_state=PowerState.NOSTATE, terminated_at=deps.clock(),
                    deleted=True))
