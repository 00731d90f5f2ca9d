"""Server actions on this host: reboot, stop/start, pause/unpause, suspend/resume, rebuild,
and the delete (:func:`terminate_instance`).

The API has already moved the instance's task state (a compare-and-swap from none),
recorded the action and cast one message here. Each handler runs under the instance's
lock, so a build, a delete or another action of the same instance never interleaves with
it; it records an event, calls the driver, reads the guest's power state back and writes
the end state with a compare-and-swap on the task state it expects, so a delete that
lands meanwhile (task_state deleting) wins and the action only records its event.

A driver failure clears the task state, keeps the vm_state, and records a fault and a
failed event; a failed rebuild puts the instance in ERROR, as Nova does (its guest is
gone by then).

A delete is not an action of this kind: it destroys the guest, frees the host's claim and
marks the instance deleted, whatever state it was in.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from strato.compute.deps import ComputeDeps, current_instance, notifier
from strato.domain.actions import EventResult
from strato.domain.context import RequestContext
from strato.domain.errors import InvalidState, NotFound, StratoError
from strato.domain.ids import InstanceId
from strato.domain.instances import (
    REBUILD_TASKS,
    Fault,
    InstanceChanges,
    PowerState,
    TaskState,
    VmState,
)
from strato.log import bind_instance
from strato.rpc.contracts.compute import (
    PauseInstance,
    RebootInstance,
    RebuildInstance,
    RestoreInstance,
    ResumeInstance,
    SoftDeleteInstance,
    StartInstance,
    StopInstance,
    SuspendInstance,
    TerminateInstance,
    UnpauseInstance,
)

if TYPE_CHECKING:
    from strato.virt.driver import VirtDriver

PowerMessage = (StopInstance | StartInstance | SoftDeleteInstance | RestoreInstance
                | PauseInstance | UnpauseInstance | SuspendInstance | ResumeInstance)

__all__ = ["EVENTS", "POWER_ACTIONS", "PowerMessage", "TERMINATE_EVENT", "power_action",
           "reboot_instance", "rebuild_instance", "terminate_instance"]

logger = logging.getLogger(__name__)

# Nova's event names (``wrap_instance_event(prefix="compute")`` on the manager's methods).
EVENTS = {
    "reboot": "compute_reboot_instance", "stop": "compute_stop_instance",
    "start": "compute_start_instance", "pause": "compute_pause_instance",
    "unpause": "compute_unpause_instance", "suspend": "compute_suspend_instance",
    "resume": "compute_resume_instance", "rebuild": "compute_rebuild_instance",
    "soft_delete": "compute_soft_delete_instance", "restore": "compute_restore_instance",
}
TERMINATE_EVENT = "compute_terminate_instance"


class _Superseded(Exception):
    """The instance moved on under the action (deleted, most likely): stop quietly."""


@dataclass(frozen=True, slots=True, kw_only=True)
class _Step:
    """One action as the compute runs it."""

    name: str
    tasks: tuple[TaskState, ...]  # the task states the action may leave behind
    done: VmState  # the vm_state once the driver succeeded
    failed: VmState | None = None  # the vm_state after a failure (None: unchanged)

    @property
    def event(self) -> str:
        return EVENTS[self.name]


async def reboot_instance(ctx: RequestContext, msg: RebootInstance, *,
                          deps: ComputeDeps) -> None:
    """Nova's ``reboot_instance``: soft (ACPI, forced after the driver's timeout) or
    hard (reset); the guest ends up running, the server ACTIVE."""
    task = TaskState.REBOOTING_HARD if msg.hard else TaskState.REBOOTING
    step = _Step(name="reboot", tasks=(task,), done=VmState.ACTIVE)

    async def call() -> None:
        await deps.driver.reboot(msg.instance_id, hard=msg.hard)
    await _run(ctx, deps, msg.instance_id, step, call)


# The actions that are one driver call on the guest: the step each runs, and the call.
_PowerCall = Callable[["VirtDriver", InstanceId], Awaitable[None]]
POWER_ACTIONS: dict[type, tuple[_Step, _PowerCall]] = {
    # Power off (cleanly if the guest answers within the driver's timeout).
    StopInstance: (_Step(name="stop", tasks=(TaskState.POWERING_OFF,),
                         done=VmState.STOPPED), lambda d, i: d.power_off(i)),
    StartInstance: (_Step(name="start", tasks=(TaskState.POWERING_ON,),
                          done=VmState.ACTIVE), lambda d, i: d.power_on(i)),
    # A delete while reclaim_instance_interval > 0: the guest is powered off and kept (with
    # its resources) until it is restored, force-deleted or reclaimed.
    SoftDeleteInstance: (_Step(name="soft_delete", tasks=(TaskState.SOFT_DELETING,),
                               done=VmState.SOFT_DELETED), lambda d, i: d.power_off(i)),
    RestoreInstance: (_Step(name="restore", tasks=(TaskState.RESTORING,),
                            done=VmState.ACTIVE), lambda d, i: d.power_on(i)),
    PauseInstance: (_Step(name="pause", tasks=(TaskState.PAUSING,), done=VmState.PAUSED),
                    lambda d, i: d.pause(i)),
    UnpauseInstance: (_Step(name="unpause", tasks=(TaskState.UNPAUSING,),
                            done=VmState.ACTIVE), lambda d, i: d.unpause(i)),
    # Suspend saves the guest's memory to disk and stops it; resume restores it.
    SuspendInstance: (_Step(name="suspend", tasks=(TaskState.SUSPENDING,),
                            done=VmState.SUSPENDED), lambda d, i: d.suspend(i)),
    ResumeInstance: (_Step(name="resume", tasks=(TaskState.RESUMING,),
                           done=VmState.ACTIVE), lambda d, i: d.resume(i)),
}


async def power_action(ctx: RequestContext, msg: PowerMessage, *, deps: ComputeDeps) -> None:
    """Run one of :data:`POWER_ACTIONS` (stop, start, pause, suspend, soft delete ...)."""
    step, call = POWER_ACTIONS[type(msg)]
    await _run(ctx, deps, msg.instance_id, step, lambda: call(deps.driver, msg.instance_id))


async def rebuild_instance(ctx: RequestContext, msg: RebuildInstance, *,
                           deps: ComputeDeps) -> None:
    """Nova's ``rebuild_instance`` on the same host: destroy the guest, then task
    rebuild_block_device_mapping -> rebuild_spawning, spawn from the new image (the
    claim is kept: the flavor did not change), and ACTIVE again (STOPPED again, powered
    off, when it was stopped before). It counts as a build for the host's build limit."""
    iid = msg.request.instance_id
    step = _Step(name="rebuild", tasks=REBUILD_TASKS,
                 done=VmState.STOPPED if msg.stopped else VmState.ACTIVE,
                 failed=VmState.ERROR)

    async def call() -> None:
        await deps.driver.destroy(iid)
        await _cas(ctx, deps, iid, {"task_state": TaskState.REBUILD_BLOCK_DEVICE_MAPPING},
                   (TaskState.REBUILDING,))
        await _cas(ctx, deps, iid, {"task_state": TaskState.REBUILD_SPAWNING},
                   (TaskState.REBUILD_BLOCK_DEVICE_MAPPING,))
        # The instance keeps its ports: the same NICs, re-plugged (a no-op when present).
        vifs = await deps.conductor.instance_vifs(ctx, iid)
        await deps.network.plug(ctx, vifs)
        await deps.driver.spawn(msg.request, node=msg.node, vifs=vifs)
        if msg.stopped:
            await deps.driver.power_off(iid, timeout=0)
    await _run(ctx, deps, iid, step, call, spawns=True)


async def _run(ctx: RequestContext, deps: ComputeDeps, iid: InstanceId, step: _Step,
               call: Callable[[], Awaitable[None]], *, spawns: bool = False) -> None:
    """Run one action under the instance's lock: event, driver call, end state. An
    action that ``spawns`` also takes a build slot (after the lock, as a build does) and
    sets ``launched_at``."""
    with bind_instance(iid):
        async with contextlib.AsyncExitStack() as held:
            await held.enter_async_context(deps.locks.hold(iid))
            if spawns:
                await held.enter_async_context(deps.builds)
            await deps.conductor.start_event(ctx, iid, step.event, deps.host)
            logger.info("instance.%s.start", step.name)
            try:
                await call()
                info = await deps.driver.get_info(iid)
                changes: InstanceChanges = {"vm_state": step.done, "task_state": None,
                                            "power_state": info.power_state}
                if spawns:
                    changes["launched_at"] = deps.clock()
                await _cas(ctx, deps, iid, changes, step.tasks)
            except _Superseded as exc:
                logger.info("instance.%s.abandoned: %s", step.name, exc)
                await deps.conductor.finish_event(ctx, iid, step.event, EventResult.ERROR,
                                                  f"the instance changed meanwhile: {exc}")
            except Exception as exc:  # any driver failure ends the action, not the host
                await _fail(ctx, deps, iid, step, exc)
            else:
                logger.info("instance.%s.done", step.name)
                await deps.conductor.finish_event(ctx, iid, step.event, EventResult.SUCCESS)


async def _cas(ctx: RequestContext, deps: ComputeDeps, iid: InstanceId,
               changes: InstanceChanges, expected: tuple[TaskState, ...]) -> None:
    try:
        await deps.conductor.update_instance(ctx, iid, changes, expected_task_state=expected)
    except (InvalidState, NotFound) as exc:
        raise _Superseded(str(exc)) from exc


async def _fail(ctx: RequestContext, deps: ComputeDeps, iid: InstanceId, step: _Step,
                exc: Exception) -> None:
    """Clear the task, keep (or set) the vm_state, record the fault and a failed event."""
    if isinstance(exc, StratoError):
        error = exc.message
        logger.warning("instance.%s.failed: %s", step.name, error)
    else:
        error = f"{type(exc).__name__}: {exc}"
        logger.exception("instance.%s.failed", step.name)
    changes: InstanceChanges = {
        "task_state": None,
        "fault": Fault.internal(error, deps.clock())}
    if step.failed is not None:
        changes["vm_state"] = step.failed
    changes["power_state"] = await _power_state(deps, iid)
    try:
        await deps.conductor.update_instance(ctx, iid, changes, expected_task_state=step.tasks)
    except (InvalidState, NotFound):
        logger.info("instance changed while its %s failed", step.name)
    await deps.conductor.finish_event(ctx, iid, step.event, EventResult.ERROR, error)


async def _power_state(deps: ComputeDeps, iid: InstanceId) -> PowerState:
    """What the hypervisor says now; NOSTATE when it has no such guest (or cannot say)."""
    try:
        return (await deps.driver.get_info(iid)).power_state
    except Exception:  # a failed action may leave a driver that cannot answer either
        logger.info("no power state after the failure", exc_info=True)
        return PowerState.NOSTATE


async def terminate_instance(ctx: RequestContext, msg: TerminateInstance, *,
                             deps: ComputeDeps) -> None:
    """Destroy the guest, free the host's claim, and mark the instance deleted."""
    iid = msg.instance_id
    with bind_instance(iid):
        async with deps.locks.hold(iid):
            await deps.conductor.start_event(ctx, iid, TERMINATE_EVENT, deps.host)
            instance = await current_instance(ctx, deps, iid)
            if instance is not None:
                await notifier(deps).delete_start(ctx, instance)
            vifs = await deps.conductor.instance_vifs(ctx, iid)
            await deps.driver.destroy(iid)
            await deps.network.unplug(ctx, vifs)
            deps.tracker.release(iid)
            # Marks it deleted, and deletes (or unbinds) its ports in that transaction.
            await deps.conductor.record_soft_delete(ctx, iid)
            logger.info("instance.delete.done")
            await deps.conductor.finish_event(ctx, iid, TERMINATE_EVENT, EventResult.SUCCESS)
            if instance is not None:
                await notifier(deps).delete_end(ctx, replace(
                    instance, vm_state=VmState.DELETED, task_state=None,
                    power_state=PowerState.NOSTATE, terminated_at=deps.clock(),
                    deleted=True))
