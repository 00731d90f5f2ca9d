"""The conductor service: routes build workflows and proxies the database for computes.

Computes never open the database; every read and write they need is one of the small
handlers below, each a thin call into the repository.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING

from strato.conductor import boot
from strato.conductor import network as network_handlers
from strato.db.ports import AllocationHealing, InstanceQuery
from strato.domain.actions import InstanceAction
from strato.domain.context import RequestContext
from strato.domain.errors import NotFound
from strato.domain.instances import Instance
from strato.rpc.contracts.conductor import (
    BuildInstances,
    FinishEvent,
    GetInstance,
    HealAllocations,
    InstancesOnHost,
    ListInstanceActions,
    RecordBuild,
    RecordEvents,
    RecordSoftDelete,
    ReleaseAllocations,
    ReportNodes,
    RescheduleInstance,
    StartBuild,
    StartEvent,
    UpdateInstance,
)

if TYPE_CHECKING:
    from strato.db.ports import Database
    from strato.rpc.bus import Bus, HandlerTable

__all__ = ["COMPUTE_BINARY", "ConductorDeps", "handlers"]

COMPUTE_BINARY = "strato-compute"

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class ConductorDeps:
    db: Database
    boot: boot.BootDeps
    bus: Bus


def handlers(deps: ConductorDeps) -> HandlerTable:
    """The conductor's routing table."""
    return {
        BuildInstances: partial(boot.build_instances, deps=deps.boot),
        RescheduleInstance: partial(boot.reschedule_instance, deps=deps.boot),
        UpdateInstance: partial(update_instance, db=deps.db),
        GetInstance: partial(get_instance, db=deps.db),
        RecordSoftDelete: partial(record_soft_delete, db=deps.db),
        ReleaseAllocations: partial(release_allocations, db=deps.db),
        StartEvent: partial(start_event, db=deps.db),
        FinishEvent: partial(finish_event, db=deps.db),
        RecordEvents: partial(record_events, db=deps.db),
        ReportNodes: partial(report_nodes, db=deps.db),
        InstancesOnHost: partial(instances_on_host, db=deps.db),
        HealAllocations: partial(heal_allocations, db=deps.db),
        ListInstanceActions: partial(list_instance_actions, db=deps.db),
        StartBuild: partial(start_build, db=deps.db),
        RecordBuild: partial(record_build, db=deps.db),
        **network_handlers.handlers(network_handlers.NetworkDeps(db=deps.db, bus=deps.bus)),
    }


async def start_build(ctx: RequestContext, msg: StartBuild, *, db: Database) -> str | None:
    del ctx
    return await db.placement.start_build(msg.instance_id, msg.host)


async def record_build(ctx: RequestContext, msg: RecordBuild, *, db: Database) -> None:
    del ctx
    await db.nodes.record_build(msg.dest, succeeded=msg.succeeded)


async def update_instance(ctx: RequestContext, msg: UpdateInstance, *,
                          db: Database) -> Instance:
    del ctx
    return await db.instances.update(msg.instance_id, msg.changes,
                                     expected_task_state=msg.expected_task_state)


async def get_instance(ctx: RequestContext, msg: GetInstance, *, db: Database) -> Instance:
    del ctx
    return await db.instances.get(msg.instance_id)


async def record_soft_delete(ctx: RequestContext, msg: RecordSoftDelete, *,
                               db: Database) -> None:
    del ctx
    await db.instances.soft_delete(msg.instance_id)


async def release_allocations(ctx: RequestContext, msg: ReleaseAllocations, *,
                              db: Database) -> None:
    del ctx
    await db.nodes.release(msg.instance_id)


async def start_event(ctx: RequestContext, msg: StartEvent, *, db: Database) -> None:
    del ctx
    await db.actions.start_event(instance_id=msg.instance_id, request_id=msg.request_id,
                                 event=msg.event, host=msg.host)


async def finish_event(ctx: RequestContext, msg: FinishEvent, *, db: Database) -> None:
    del ctx
    await db.actions.finish_event(instance_id=msg.instance_id, request_id=msg.request_id,
                                  event=msg.event, result=msg.result, traceback=msg.traceback)


async def record_events(ctx: RequestContext, msg: RecordEvents, *, db: Database) -> None:
    """Record a compute's timed build steps; nothing to do when the action is gone (the
    instance was deleted and its history went with it meanwhile)."""
    del ctx
    try:
        await db.actions.record_events(instance_id=msg.instance_id,
                                       request_id=msg.request_id, events=msg.events)
    except NotFound:
        logger.debug("no action %s on instance %s any more: %d event(s) not recorded",
                     msg.request_id, msg.instance_id, len(msg.events))


async def report_nodes(ctx: RequestContext, msg: ReportNodes, *, db: Database) -> None:
    """Record a compute's capacity; the report is also its heartbeat."""
    del ctx
    await db.nodes.report(msg.capacities)
    await db.services.heartbeat(binary=COMPUTE_BINARY, host=msg.host, topic="compute")


async def instances_on_host(ctx: RequestContext, msg: InstancesOnHost, *,
                            db: Database) -> list[Instance]:
    del ctx
    return await db.instances.list(InstanceQuery(host=msg.host))


async def heal_allocations(ctx: RequestContext, msg: HealAllocations, *,
                           db: Database) -> AllocationHealing:
    del ctx
    return await db.nodes.heal_host(msg.host)


async def list_instance_actions(ctx: RequestContext, msg: ListInstanceActions, *,
                                db: Database) -> list[InstanceAction]:
    del ctx
    return await db.actions.list(msg.instance_id)
