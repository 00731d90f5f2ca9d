"""The build deadline (Nova's ``instance_build_timeout``): every build ends ACTIVE or ERROR.

A build is a chain of casts (api -> conductor -> scheduler -> compute); when one message is
lost, or a service dies holding it, nobody is left to finish the build and the instance
would stay in BUILD forever, holding its claim. The conductor therefore looks, every
``min(30, timeout / 4)`` seconds, for instances still in vm_state ``building`` that were
created more than ``timeout`` seconds ago, and puts each into ERROR with a fault naming the
step that never answered, then frees its allocations.

Every write is a compare-and-swap on the task state the check saw, so a build that moves
on at the same moment wins or loses cleanly: if the compute finishes first the check does
nothing; if the check wins, the compute's next state write fails and it cleans up its
guest as it does for a delete. Several conductors may run the check at once for the same
reason.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING

from strato.db.ports import InstanceQuery
from strato.domain.actions import EventResult
from strato.domain.errors import InvalidState, NotFound, StratoError
from strato.domain.ids import InstanceId
from strato.domain.instances import BUILD_TASKS, Fault, Instance, VmState
from strato.log import bind_instance

if TYPE_CHECKING:
    from strato.db.ports import Database

__all__ = ["DEADLINE_EVENT", "DeadlineDeps", "check_interval", "expire_builds",
           "timeout_message", "watch_builds"]

logger = logging.getLogger(__name__)

DEADLINE_EVENT = "conductor_build_deadline"


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True, slots=True, kw_only=True)
class DeadlineDeps:
    db: Database
    timeout: float
    clock: Callable[[], datetime] = _utcnow


def check_interval(timeout: float) -> float:
    """Seconds between two checks: often enough that a build overshoots its deadline by
    at most a quarter of it, and never less often than every 30 s."""
    return min(30.0, timeout / 4)


def timeout_message(timeout: float, instance: Instance) -> str:
    """The fault of a build that ran out of time, naming the step that never answered."""
    head = f"Build timed out after {timeout:g} s waiting in task_state '{instance.task_state}'"
    if instance.host is None:
        # Not placed yet: the build request or the scheduler's answer went missing.
        return f"{head} (the scheduler or conductor never answered)"
    return f"{head} on host {instance.host} (compute {instance.host} never answered)"


async def watch_builds(deps: DeadlineDeps, stop: asyncio.Event) -> None:
    """Run :func:`expire_builds` periodically until ``stop`` is set (never when the
    timeout is 0). A failed pass is logged and tried again at the next tick."""
    if deps.timeout <= 0:
        return
    interval = check_interval(deps.timeout)
    while not stop.is_set():
        try:
            await expire_builds(deps)
        except StratoError as exc:
            logger.warning("build deadline check failed: %s", exc)
        except Exception:  # a lost connection or a bug: this pass only, not the loop
            logger.exception("build deadline check failed")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=interval)


async def expire_builds(deps: DeadlineDeps) -> list[InstanceId]:
    """Put every build older than the deadline into ERROR; the ids of those it did."""
    cutoff = deps.clock() - timedelta(seconds=deps.timeout)
    building = await deps.db.instances.list(InstanceQuery(vm_states=(VmState.BUILDING,)))
    expired: list[InstanceId] = []
    for instance in building:
        # A delete (task ``deleting``) owns its instance.
        if instance.task_state not in BUILD_TASKS:
            continue
        if instance.created_at is None or instance.created_at > cutoff:
            continue
        if await _expire(deps, instance):
            expired.append(instance.id)
    return expired


async def _expire(deps: DeadlineDeps, instance: Instance) -> bool:
    """ERROR with a fault, if the build is still where the check saw it; then free its
    allocations and record the failure on its create action."""
    message = timeout_message(deps.timeout, instance)
    fault = Fault.internal(message, deps.clock())
    with bind_instance(instance.id):
        try:
            await deps.db.instances.update(
                instance.id, {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
                expected_task_state=(instance.task_state,))
        except (InvalidState, NotFound):
            # It moved on (or was deleted) meanwhile; the next pass looks again.
            return False
        logger.warning("instance.build.timeout: %s", message)
        await deps.db.nodes.release(instance.id)
        try:
            await _record(deps, instance, message)
        except StratoError as exc:  # the audit trail only: the build is ended already
            logger.warning("could not record the build timeout: %s", exc)
    return True


async def _record(deps: DeadlineDeps, instance: Instance, message: str) -> None:
    """An error event on the instance's create action, so os-instance-actions shows why."""
    actions = await deps.db.actions.list(instance.id)
    create = next((a for a in actions if a.action == "create"), None)
    if create is None:
        return
    await deps.db.actions.start_event(instance_id=instance.id, request_id=create.request_id,
                                      event=DEADLINE_EVENT)
    await deps.db.actions.finish_event(instance_id=instance.id, request_id=create.request_id,
                                       event=DEADLINE_EVENT, result=EventResult.ERROR,
                                       traceback=message)
