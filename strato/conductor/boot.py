"""The build workflow, conductor side: schedule, assign, hand over to the compute; and
reschedule a build that failed on one host onto the alternates.

As in the seeds' ``build_instances``: a NoValidHost puts every instance of the request
into ERROR with a fault that says why; an instance deleted while it was being scheduled
gets its claim released and is not built.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Protocol

from strato.domain.actions import EventResult
from strato.domain.context import RequestContext
from strato.domain.errors import InvalidState, NotFound, NoValidHost, StratoError
from strato.domain.ids import HostName
from strato.domain.instances import Fault, InstanceChanges, TaskState, VmState
from strato.domain.requests import BootRequest, Destination, RetryInfo, Selection
from strato.log import bind_instance
from strato.rpc.contracts.compute import BuildAndRunInstance
from strato.rpc.contracts.conductor import BuildInstances, RescheduleInstance

if TYPE_CHECKING:
    from strato.db.ports import Database
    from strato.scheduler.client import SchedulerClient

__all__ = ["BootDeps", "ComputeHosts", "build_instances", "reschedule_instance"]

logger = logging.getLogger(__name__)

EVENT = "conductor_schedule_and_build_instances"


class ComputeHosts(Protocol):
    """How a build reaches its host (the compute's client: a cast to that host)."""

    async def build_and_run_instance(self, ctx: RequestContext, host: HostName,
                                     msg: BuildAndRunInstance) -> None:
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class BootDeps:
    db: Database
    scheduler: SchedulerClient
    compute: ComputeHosts
    max_attempts: int = 3


async def build_instances(ctx: RequestContext, msg: BuildInstances, *, deps: BootDeps) -> None:
    """Schedule the request's instances together, then cast each to its host."""
    logger.info("instance.schedule.start: %d instance(s)", len(msg.requests))
    for req in msg.requests:
        await _start(deps, ctx, req)
    try:
        placements = await deps.scheduler.select_destinations(ctx, msg.requests,
                                                              min_count=msg.min_count)
    except StratoError as exc:
        # NoValidHost, or the scheduler being unreachable: either way these instances
        # cannot be built now, and must not stay in BUILD forever.
        logger.warning("scheduling failed for %d instance(s): %s", len(msg.requests), exc)
        for req in msg.requests:
            await _fail(deps, ctx, req, exc)
        return
    by_id = {req.instance_id: req for req in msg.requests}
    for refusal in placements.refusals:
        # A multi-create placed at least min_count; these did not fit.
        await _fail(deps, ctx, by_id[refusal.instance_id],
                    NoValidHost(refusal.message, details=refusal.details))
    for selection in placements.selections:
        await _hand_over(deps, ctx, by_id[selection.instance_id], selection.chosen,
                         selection.alternates)


async def reschedule_instance(ctx: RequestContext, msg: RescheduleInstance, *,
                              deps: BootDeps) -> None:
    """Try the next host for a build that failed in a retryable way."""
    req = msg.request
    retry = RetryInfo(attempts=req.retry.attempts + 1,
                      hosts=(*req.retry.hosts, msg.failed_host), last_error=msg.error)
    req = replace(req, retry=retry)
    await _start(deps, ctx, req)
    if retry.attempts > deps.max_attempts:
        # The event's details say it without the last error (which may name a host).
        await _fail(deps, ctx, req, NoValidHost(
            f"Exceeded maximum number of retries ({deps.max_attempts}). Exhausted all "
            f"hosts available for retrying build failures for instance {req.instance_id}. "
            f"Last error: {msg.error}"),
            details=f"not rescheduled: the build failed on {_hosts(len(retry.hosts))}, "
                    f"the maximum number of tries ({deps.max_attempts})")
        return
    how = "took the next alternate host"
    selection = await _claim_alternate(deps, req, msg.alternates)
    if selection is None:
        how = "no alternate host had room, so the scheduler chose again"
        try:
            selection = (await deps.scheduler.select_destinations(
                ctx, (req,), exclude_hosts=retry.hosts)).selections[0]
        except StratoError as exc:
            # As Nova, the user learns the last build error too (errors name no host).
            tail = f" Last build error: {msg.error}"
            await _fail(deps, ctx, req, NoValidHost(
                f"{exc.message}{tail}", details=f"{exc.details or exc.message}\n{tail.strip()}"),
                details=f"{exc.message} (rescheduling after a build failure on another host)")
            return
    await _hand_over(deps, ctx, req, selection.chosen, selection.alternates, rescheduled=how)


async def _claim_alternate(deps: BootDeps, req: BootRequest,
                           alternates: tuple[Destination, ...]) -> Selection | None:
    """Claim the first alternate that still has room (it was not claimed before)."""
    need = req.flavor.resources
    for i, dest in enumerate(alternates):
        if dest.host in req.retry.hosts:
            continue
        if await deps.db.nodes.claim(req.instance_id, dest, need):
            return Selection(instance_id=req.instance_id, chosen=dest,
                             alternates=alternates[i + 1:])
    return None


async def _hand_over(deps: BootDeps, ctx: RequestContext, req: BootRequest,
                     dest: Destination, alternates: tuple[Destination, ...], *,
                     rescheduled: str | None = None) -> None:
    """Record the chosen host (unless the instance was deleted meanwhile) and cast.

    The scheduling event keeps the host, the alternates still worth a try (admins see
    them) and, for everyone, a sentence without host names: how the host was found
    (``rescheduled`` says how, for a reschedule) and how many alternates are left."""
    with bind_instance(req.instance_id):
        try:
            changes: InstanceChanges = {"host": dest.host, "node": dest.node}
            if dest.availability_zone:
                # As Nova: an instance booted without a zone takes its host's.
                changes["availability_zone"] = dest.availability_zone
            await deps.db.instances.update(req.instance_id, changes,
                                           expected_task_state=(TaskState.SCHEDULING,))
        except (InvalidState, NotFound):
            logger.info("instance deleted while scheduling; releasing its claim")
            await deps.db.nodes.release(req.instance_id)
            await _finish(deps, ctx, req, EventResult.ERROR, "deleted while scheduling",
                          details="the server was deleted while it was being scheduled")
            return
        kept = tuple(a.host for a in alternates if a.host not in req.retry.hosts)
        if rescheduled is None:
            details = f"placed on a host; {_hosts(len(kept), 'alternate')} kept for reschedules"
        else:
            details = (f"rescheduled after a build failure on another host (try "
                       f"{req.retry.attempts} of {deps.max_attempts}); {rescheduled}; "
                       f"{_hosts(len(kept), 'alternate')} left")
        await _finish(deps, ctx, req, EventResult.SUCCESS, host=dest.host, details=details,
                      alternates=kept)
        logger.info("instance.schedule.done: building on %s/%s", dest.host, dest.node)
        msg = BuildAndRunInstance(request=req, node=dest.node, alternates=alternates)
        await deps.compute.build_and_run_instance(ctx, dest.host, msg)


async def _fail(deps: BootDeps, ctx: RequestContext, req: BootRequest,
                exc: StratoError, *, details: str | None = None) -> None:
    """Put the instance in ERROR with a fault, and free anything it holds. The event's
    details (for everyone) are the fault's message unless ``details`` is given."""
    with bind_instance(req.instance_id):
        await deps.db.nodes.release(req.instance_id)
        # The message (counts, no host names) is for everyone; the details (host by
        # host, for a NoValidHost) only for admins, as Nova shows a 500 fault's details.
        fault = Fault.internal(exc.message, datetime.now(UTC), details=exc.details)
        try:
            await deps.db.instances.update(
                req.instance_id,
                {"vm_state": VmState.ERROR, "task_state": None, "fault": fault},
                expected_task_state=(TaskState.SCHEDULING,))
        except (InvalidState, NotFound):
            logger.info("instance deleted while scheduling; nothing to mark")
        await _finish(deps, ctx, req, EventResult.ERROR, exc.message,
                      details=details or exc.message)


async def _start(deps: BootDeps, ctx: RequestContext, req: BootRequest) -> None:
    await deps.db.actions.start_event(instance_id=req.instance_id,
                                      request_id=ctx.request_id, event=EVENT)


async def _finish(deps: BootDeps, ctx: RequestContext, req: BootRequest, result: EventResult,
                  detail: str | None = None, *, host: HostName | None = None,
                  details: str | None = None,
                  alternates: tuple[HostName, ...] | None = None) -> None:
    await deps.db.actions.finish_event(instance_id=req.instance_id,
                                       request_id=ctx.request_id, event=EVENT,
                                       result=result, traceback=detail, host=host,
                                       details=details, alternates=alternates)


def _hosts(count: int, kind: str = "") -> str:
    """A count of hosts in words ("no alternate hosts", "1 host"), never a name."""
    noun = f"{kind} host" if kind else "host"
    return f"{count or 'no'} {noun}{'' if count == 1 else 's'}"
