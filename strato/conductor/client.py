"""Typed client of the conductor: how computes reach the database, and how the API
hands builds over."""

from __future__ import annotations

from dataclasses import dataclass

from strato.db.ports import AllocationHealing
from strato.domain.actions import EventResult, InstanceAction, TimedEvent
from strato.domain.context import RequestContext
from strato.domain.ids import HostName, InstanceId
from strato.domain.instances import Instance, InstanceChanges, TaskState
from strato.domain.networks import HostPorts, PortStatus, Vif
from strato.domain.requests import BootRequest, Destination
from strato.domain.resources import NodeCapacity
from strato.rpc.bus import Bus, Target
from strato.rpc.contracts.conductor import (
    TOPIC,
    AllocateNetworks,
    BuildInstances,
    FinishEvent,
    GetInstance,
    HealAllocations,
    HostNetworkState,
    InstancesOnHost,
    InstanceVifs,
    ListInstanceActions,
    RecordBuild,
    RecordEvents,
    RecordSoftDelete,
    ReleaseAllocations,
    ReleaseNetworks,
    ReportNodes,
    RescheduleInstance,
    SetPortsStatus,
    StartBuild,
    StartEvent,
    UpdateInstance,
)

__all__ = ["ConductorClient"]

_TARGET = Target(TOPIC)


@dataclass(frozen=True, slots=True)
class ConductorClient:
    bus: Bus
    timeout: float = 60.0

    async def build_instances(self, ctx: RequestContext, requests: tuple[BootRequest, ...],
                              min_count: int | None = None) -> None:
        """Schedule and build the instances (cast); ``min_count`` of a multi-create: as
        many as fit, at least this many (None: all)."""
        await self.bus.cast(_TARGET, BuildInstances(requests=requests, min_count=min_count),
                            ctx=ctx)

    async def reschedule(self, ctx: RequestContext, msg: RescheduleInstance) -> None:
        await self.bus.cast(_TARGET, msg, ctx=ctx)

    async def update_instance(self, ctx: RequestContext, instance_id: InstanceId,
                              changes: InstanceChanges, *,
                              expected_task_state: tuple[TaskState | None, ...] | None
                              ) -> Instance:
        """Compare-and-swap write; raises InvalidState or NotFound like the repository."""
        msg = UpdateInstance(instance_id=instance_id, changes=changes,
                             expected_task_state=expected_task_state)
        result: Instance = await self.bus.call(_TARGET, msg, ctx=ctx, returns=Instance,
                                               timeout=self.timeout)
        return result

    async def get_instance(self, ctx: RequestContext, instance_id: InstanceId) -> Instance:
        result: Instance = await self.bus.call(
            _TARGET, GetInstance(instance_id=instance_id), ctx=ctx, returns=Instance,
            timeout=self.timeout)
        return result

    async def record_soft_delete(self, ctx: RequestContext, instance_id: InstanceId) -> None:
        await self.bus.call(_TARGET, RecordSoftDelete(instance_id=instance_id), ctx=ctx,
                            timeout=self.timeout)

    async def release_allocations(self, ctx: RequestContext, instance_id: InstanceId) -> None:
        await self.bus.call(_TARGET, ReleaseAllocations(instance_id=instance_id), ctx=ctx,
                            timeout=self.timeout)

    async def start_event(self, ctx: RequestContext, instance_id: InstanceId, event: str,
                          host: HostName | None = None) -> None:
        msg = StartEvent(instance_id=instance_id, request_id=ctx.request_id, event=event,
                         host=host)
        await self.bus.call(_TARGET, msg, ctx=ctx, timeout=self.timeout)

    async def finish_event(self, ctx: RequestContext, instance_id: InstanceId, event: str,
                           result: EventResult, traceback: str | None = None) -> None:
        msg = FinishEvent(instance_id=instance_id, request_id=ctx.request_id, event=event,
                          result=result, traceback=traceback)
        await self.bus.call(_TARGET, msg, ctx=ctx, timeout=self.timeout)

    async def record_events(self, ctx: RequestContext, instance_id: InstanceId,
                            events: tuple[TimedEvent, ...]) -> None:
        """Record finished events under the request's action, all in one message (cast:
        nothing waits for it; nothing is sent for no events)."""
        if events:
            await self.bus.cast(_TARGET, RecordEvents(
                instance_id=instance_id, request_id=ctx.request_id, events=events), ctx=ctx)

    async def report_nodes(self, ctx: RequestContext, host: HostName,
                           capacities: tuple[NodeCapacity, ...]) -> None:
        await self.bus.call(_TARGET, ReportNodes(host=host, capacities=capacities), ctx=ctx,
                            timeout=self.timeout)

    async def instances_on_host(self, ctx: RequestContext, host: HostName) -> list[Instance]:
        """The non-deleted instances whose host is ``host``."""
        result: list[Instance] = await self.bus.call(
            _TARGET, InstancesOnHost(host=host), ctx=ctx, returns=list[Instance],
            timeout=self.timeout)
        return result

    async def heal_allocations(self, ctx: RequestContext, host: HostName) -> AllocationHealing:
        """Make the database's allocations on ``host`` match its instances."""
        result: AllocationHealing = await self.bus.call(
            _TARGET, HealAllocations(host=host), ctx=ctx, returns=AllocationHealing,
            timeout=self.timeout)
        return result

    async def instance_actions(self, ctx: RequestContext,
                               instance_id: InstanceId) -> list[InstanceAction]:
        """The instance's actions with their events, newest first."""
        result: list[InstanceAction] = await self.bus.call(
            _TARGET, ListInstanceActions(instance_id=instance_id), ctx=ctx,
            returns=list[InstanceAction], timeout=self.timeout)
        return result

    async def start_build(self, ctx: RequestContext, instance_id: InstanceId,
                          host: HostName) -> str | None:
        """Admit the build here against the instance's group policies and move it to
        networking; the violated rule, or None. ``InvalidState``/``NotFound`` when the
        instance stopped scheduling (deleted meanwhile)."""
        result: str | None = await self.bus.call(
            _TARGET, StartBuild(instance_id=instance_id, host=host), ctx=ctx,
            returns=str | None, timeout=self.timeout)
        return result

    async def record_build(self, ctx: RequestContext, dest: Destination, *,
                           succeeded: bool) -> None:
        """Count the build's outcome on the node (cast: nothing waits for it)."""
        await self.bus.cast(_TARGET, RecordBuild(dest=dest, succeeded=succeeded), ctx=ctx)

    # networks

    async def allocate_networks(self, ctx: RequestContext, req: BootRequest, host: HostName,
                                availability_zone: str | None = None) -> list[Vif]:
        """The instance's ports, made or bound on ``host`` (see ``AllocateNetworks``)."""
        msg = AllocateNetworks(instance_id=req.instance_id, project_id=req.project_id,
                               host=host, networks=req.networks,
                               security_groups=req.security_groups,
                               availability_zone=availability_zone)
        result: list[Vif] = await self.bus.call(_TARGET, msg, ctx=ctx, returns=list[Vif],
                                                timeout=self.timeout)
        return result

    async def release_networks(self, ctx: RequestContext, instance_id: InstanceId) -> None:
        await self.bus.call(_TARGET, ReleaseNetworks(instance_id=instance_id), ctx=ctx,
                            timeout=self.timeout)

    async def instance_vifs(self, ctx: RequestContext, instance_id: InstanceId) -> list[Vif]:
        result: list[Vif] = await self.bus.call(
            _TARGET, InstanceVifs(instance_id=instance_id), ctx=ctx, returns=list[Vif],
            timeout=self.timeout)
        return result

    async def host_network_state(self, ctx: RequestContext, host: HostName) -> HostPorts:
        result: HostPorts = await self.bus.call(
            _TARGET, HostNetworkState(host=host), ctx=ctx, returns=HostPorts,
            timeout=self.timeout)
        return result

    async def set_ports_status(self, ctx: RequestContext, port_ids: tuple[str, ...],
                               status: PortStatus) -> None:
        if port_ids:
            await self.bus.call(_TARGET, SetPortsStatus(port_ids=port_ids, status=status),
                                ctx=ctx, timeout=self.timeout)

