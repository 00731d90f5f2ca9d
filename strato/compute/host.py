"""A compute host that heals itself: what it does when it starts, and its periodic tasks.

:func:`init_host` is the seeds' ``init_host``/``_init_instance``. It runs once, after the
driver started and before the host takes any message, over the instances the conductor
says are on this host:

- a build the restart cut off (task scheduling ... spawning) goes to ERROR with a fault
  naming the step, its guest (if any) is destroyed and its allocations freed;
- a delete the restart cut off (task deleting) is finished;
- a rebuild the restart cut off goes to ERROR (it keeps its resources: it ran before);
- another action the restart cut off (reboot, stop ...) loses its task, and the record
  takes the guest's power state and the vm_state it stands for;
- every other instance is counted in the tracker and its power state synced;
- a guest the hypervisor runs for no instance strato has here is logged and reported,
  never destroyed: it may be someone else's.

:func:`run_periodic_tasks` then runs the capacity report (the heartbeat), the resource
audit and the power-state sync (``strato.compute.audit``), each on its interval.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, TypeVar

from strato.compute.audit import (
    held_resources,
    sync_instance_power_state,
    sync_power_states,
    unknown_guests,
    update_available_resource,
    warn_unknown,
)
from strato.compute.lifecycle import terminate_instance
from strato.compute.service import report_periodically
from strato.domain.actions import EventResult
from strato.domain.context import RequestContext, admin_context
from strato.domain.errors import InvalidState, NotFound, StratoError, Unavailable
from strato.domain.ids import InstanceId
from strato.domain.instances import BUILD_TASKS, REBUILD_TASKS, Fault, Instance, TaskState, VmState
from strato.log import bind_context, bind_instance
from strato.rpc.contracts.compute import TerminateInstance

if TYPE_CHECKING:
    from strato.compute.deps import ComputeDeps

__all__ = ["HostIntervals", "HostReport", "init_host", "interrupted_message",
           "reclaim_queued_deletes", "run_periodic_tasks"]

logger = logging.getLogger(__name__)

T = TypeVar("T")

# Seconds between two tries to reach the conductor at start-up.
_RETRY = 2.0


def interrupted_message(what: str, task: TaskState | str) -> str:
    """The fault of work the restart cut off."""
    return f"{what} interrupted: the compute service restarted during {task}"


@dataclass(frozen=True, slots=True, kw_only=True)
class HostReport:
    """What :func:`init_host` found and did, instance by instance."""

    failed_builds: tuple[InstanceId, ...] = ()
    finished_deletes: tuple[InstanceId, ...] = ()
    failed_rebuilds: tuple[InstanceId, ...] = ()
    cleared_tasks: tuple[InstanceId, ...] = ()
    tracked: tuple[InstanceId, ...] = ()
    unknown_guests: tuple[InstanceId, ...] = ()
    errors: tuple[InstanceId, ...] = ()      # could not be reconciled (logged)


@dataclass(frozen=True, slots=True, kw_only=True)
class HostIntervals:
    """Seconds between runs of each periodic task (0: never)."""

    report: float
    resource_audit: float = 60.0
    sync_power_state: float = 600.0
    reclaim: float = 0.0   # reclaim_instance_interval: also the age a soft delete waits


async def init_host(deps: ComputeDeps, stop: asyncio.Event | None = None) -> HostReport:
    """Reconcile this host's instances and guests after a (re)start; see the module
    docstring. Waits for the conductor when it does not answer (it may be starting
    too), until ``stop`` is set."""
    ctx = admin_context()
    with bind_context(ctx):
        instances = await _patiently(
            lambda: deps.conductor.instances_on_host(ctx, deps.host), stop)
        if instances is None:
            return HostReport()
        guests = await deps.driver.list_instances()
        outcomes: dict[str, list[InstanceId]] = {}
        for instance in instances:
            with bind_instance(instance.id):
                try:
                    outcome = await _init_instance(ctx, deps, instance)
                except Exception:  # one bad instance must not keep the host down
                    logger.exception("instance.init_host: could not reconcile the instance")
                    outcome = "errors"
            outcomes.setdefault(outcome, []).append(instance.id)
        unknown = unknown_guests(instances, guests)
        warn_unknown(unknown)
        # Taps for every port bound here (gone after a host reboot), stale devices
        # removed, the firewall rebuilt. A failure is logged: the host starts anyway
        # and the network resync loop tries again.
        await _refresh_network(ctx, deps)
        report = HostReport(
            failed_builds=tuple(outcomes.get("failed_builds", ())),
            finished_deletes=tuple(outcomes.get("finished_deletes", ())),
            failed_rebuilds=tuple(outcomes.get("failed_rebuilds", ())),
            cleared_tasks=tuple(outcomes.get("cleared_tasks", ())),
            tracked=tuple(i.id for i in instances if deps.tracker.holds(i.id)),
            unknown_guests=unknown, errors=tuple(outcomes.get("errors", ())))
        logger.info("init_host: %d instance(s) on this host: %d interrupted build(s) failed, "
                    "%d delete(s) finished, %d counted; %d unknown guest(s)", len(instances),
                    len(report.failed_builds), len(report.finished_deletes),
                    len(report.tracked), len(unknown))
        return report


async def _refresh_network(ctx: RequestContext, deps: ComputeDeps) -> None:
    try:
        await deps.network.refresh(ctx, full=True)
    except StratoError as exc:
        logger.warning("init_host: network refresh failed (%s); the resync retries", exc)
    except Exception:  # one bad port or rule must never keep the host down
        logger.exception("init_host: network refresh failed; the resync retries")


async def _patiently(call: Callable[[], Awaitable[T]], stop: asyncio.Event | None) -> T | None:
    """``call()`` until the conductor answers; ``None`` if ``stop`` is set first."""
    while stop is None or not stop.is_set():
        try:
            return await call()
        except Unavailable as exc:
            logger.warning("init_host: the conductor does not answer (%s); trying again", exc)
        if stop is None:
            await asyncio.sleep(_RETRY)
        else:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=_RETRY)
    return None


async def _init_instance(ctx: RequestContext, deps: ComputeDeps, instance: Instance) -> str:
    """Reconcile one instance; the name of the :class:`HostReport` field it belongs to."""
    task = instance.task_state
    if task in BUILD_TASKS:
        await _fail_build(ctx, deps, instance)
        return "failed_builds"
    if task == TaskState.DELETING:
        await _finish_delete(ctx, deps, instance)
        return "finished_deletes"
    outcome = "tracked"
    if task in REBUILD_TASKS:
        instance = await _fail_rebuild(ctx, deps, instance) or instance
        outcome = "failed_rebuilds"
    elif task is not None:
        instance = await _clear_task(ctx, deps, instance) or instance
        outcome = "cleared_tasks"
    if instance.task_state in BUILD_TASKS or instance.task_state == TaskState.DELETING:
        return outcome  # a delete or build took it meanwhile: its message will come
    for iid, (node, need) in held_resources(deps, [instance]).items():
        deps.tracker.track(iid, node, need)
    if instance.task_state is None:
        await sync_instance_power_state(ctx, deps, instance.id,
                                        adopt=outcome == "cleared_tasks")
    return outcome


async def _fail_build(ctx: RequestContext, deps: ComputeDeps, instance: Instance) -> None:
    """ERROR with a fault naming the step; no guest, no allocation, no open event."""
    step = instance.task_state
    assert step is not None
    message = interrupted_message("Build", step)
    await deps.driver.destroy(instance.id)  # whatever the cut-off spawn left behind
    deps.tracker.release(instance.id)
    # Its ports go as after any failed build (init_host's full network pass then
    # removes their taps).
    await deps.conductor.release_networks(ctx, instance.id)
    fault = Fault.internal(message, deps.clock())
    try:
        await deps.conductor.update_instance(
            ctx, instance.id, {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
            expected_task_state=(step,))
    except (InvalidState, NotFound) as exc:
        # Deleted, or the build deadline took it meanwhile: whoever did frees it.
        logger.info("instance.init_host: the interrupted build moved on (%s)", exc)
        return
    logger.warning("instance.build.interrupted: %s", message)
    await deps.conductor.release_allocations(ctx, instance.id)
    await _close_events(ctx, deps, instance.id, EventResult.ERROR, message)


async def _terminate_under_delete(ctx: RequestContext, deps: ComputeDeps,
                                  instance: Instance) -> None:
    """Tear the instance down as ``terminate_instance`` does, recorded under the user's
    delete request; without one (the API stopped before writing it) delete anyway."""
    actions = await deps.conductor.instance_actions(ctx, instance.id)
    delete = next((a for a in actions if a.action == "delete"), None)
    try:
        if delete is None:
            raise NotFound("no delete action")
        await terminate_instance(replace(ctx, request_id=delete.request_id),
                                 TerminateInstance(instance_id=instance.id), deps=deps)
    except NotFound:
        vifs = await deps.conductor.instance_vifs(ctx, instance.id)
        await deps.driver.destroy(instance.id)
        await deps.network.unplug(ctx, vifs)
        deps.tracker.release(instance.id)
        await deps.conductor.record_soft_delete(ctx, instance.id)


async def _finish_delete(ctx: RequestContext, deps: ComputeDeps, instance: Instance) -> None:
    """Finish the delete as the compute would have, under the request that asked for
    it; then close what the cut-off run left open."""
    await _terminate_under_delete(ctx, deps, instance)
    logger.info("instance.delete.finished after a restart")
    await _close_events(ctx, deps, instance.id, EventResult.SUCCESS,
                        "finished after the compute service restarted")


async def _fail_rebuild(ctx: RequestContext, deps: ComputeDeps,
                        instance: Instance) -> Instance | None:
    """ERROR with a fault (as Nova's ``_init_instance``); the guest and the resources
    stay, a rebuild may be asked for again."""
    assert instance.task_state is not None
    message = interrupted_message("Rebuild", instance.task_state)
    fault = Fault.internal(message, deps.clock())
    try:
        updated = await deps.conductor.update_instance(
            ctx, instance.id, {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
            expected_task_state=(instance.task_state,))
    except (InvalidState, NotFound) as exc:
        logger.info("instance.init_host: the interrupted rebuild moved on (%s)", exc)
        return None
    logger.warning("instance.rebuild.interrupted: %s", message)
    await _close_events(ctx, deps, instance.id, EventResult.ERROR, message)
    return updated


async def _clear_task(ctx: RequestContext, deps: ComputeDeps,
                      instance: Instance) -> Instance | None:
    """Drop the task of an action the restart cut off; the caller then takes the guest's
    power state as the truth."""
    assert instance.task_state is not None
    message = interrupted_message("Action", instance.task_state)
    try:
        updated = await deps.conductor.update_instance(
            ctx, instance.id, {"task_state": None},
            expected_task_state=(instance.task_state,))
    except (InvalidState, NotFound) as exc:
        logger.info("instance.init_host: the interrupted action moved on (%s)", exc)
        return None
    logger.warning("instance.action.interrupted: %s; the task is cleared", message)
    await _close_events(ctx, deps, instance.id, EventResult.ERROR, message)
    return updated


async def _close_events(ctx: RequestContext, deps: ComputeDeps, instance_id: InstanceId,
                        result: EventResult, detail: str) -> None:
    """Close every event this host started on the instance and never finished (the run
    before the restart did not live to)."""
    for action in await deps.conductor.instance_actions(ctx, instance_id):
        for event in action.events:
            if event.finish_time is not None or event.host != deps.host:
                continue
            with contextlib.suppress(NotFound):
                await deps.conductor.finish_event(replace(ctx, request_id=action.request_id),
                                                  instance_id, event.event, result, detail)


async def run_periodic_tasks(deps: ComputeDeps, stop: asyncio.Event,
                             intervals: HostIntervals) -> None:
    """Report capacity, audit resources and sync power states, each on its interval,
    until ``stop``. The first audit runs at once (it heals what the restart left); the
    first sync after one interval (``init_host`` just synced)."""
    async with asyncio.TaskGroup() as tg:
        tg.create_task(report_periodically(deps, stop, intervals.report))
        tg.create_task(_every(stop, intervals.resource_audit, "resource audit",
                              lambda: update_available_resource(deps), first_now=True))
        tg.create_task(_every(stop, intervals.sync_power_state, "power-state sync",
                              lambda: sync_power_states(deps), first_now=False))
        tg.create_task(_every(stop, intervals.reclaim, "reclaim of soft-deleted servers",
                              lambda: reclaim_queued_deletes(deps, intervals.reclaim),
                              first_now=True))


async def reclaim_queued_deletes(deps: ComputeDeps, age: float) -> list[InstanceId]:
    """Delete for good the soft-deleted instances on this host that have waited longer
    than ``age`` seconds (Nova's ``_reclaim_queued_deletes``); returns their ids."""
    ctx = admin_context()
    now = deps.clock()
    reclaimed = []
    for instance in await deps.conductor.instances_on_host(ctx, deps.host):
        if (instance.vm_state is not VmState.SOFT_DELETED or instance.task_state is not None
                or instance.updated_at is None
                or (now - instance.updated_at).total_seconds() < age):
            continue
        try:
            await deps.conductor.update_instance(ctx, instance.id,
                                                 {"task_state": TaskState.DELETING},
                                                 expected_task_state=(None,))
        except (InvalidState, NotFound):
            continue  # restored or deleted meanwhile
        logger.info("reclaiming soft-deleted instance %s", instance.id)
        # The reclaim finishes the user's (soft) delete request.
        await _terminate_under_delete(ctx, deps, instance)
        reclaimed.append(instance.id)
    return reclaimed


async def _every(stop: asyncio.Event, interval: float, name: str,
                 task: Callable[[], Awaitable[object]], *, first_now: bool) -> None:
    """Run ``task`` every ``interval`` seconds until ``stop`` (never when 0); a failed
    run is logged and the next one tried."""
    if interval <= 0:
        return
    wait = not first_now
    while not stop.is_set():
        if wait:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=interval)
            if stop.is_set():
                return
        wait = True
        try:
            await task()
        except StratoError as exc:
            logger.warning("%s failed: %s", name, exc)
        except Exception:  # a bug here must not take the host's other work down
            logger.exception("%s failed", name)

