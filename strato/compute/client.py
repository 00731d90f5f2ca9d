"""Typed client of the compute services, over the bus (one topic per host)."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.context import RequestContext
from strato.domain.ids import HostName, InstanceId
from strato.rpc.bus import Bus, Target
from strato.rpc.contracts.compute import TOPIC, BuildAndRunInstance, TerminateInstance

__all__ = ["ComputeClient"]


@dataclass(frozen=True, slots=True)
class ComputeClient:
    bus: Bus

    async def build_and_run_instance(self, ctx: RequestContext, host: HostName,
                                     msg: BuildAndRunInstance) -> None:
        await self.bus.cast(Target(TOPIC, server=host), msg, ctx=ctx)

    async def terminate_instance(self, ctx: RequestContext, host: HostName,
                                 instance_id: InstanceId) -> None:
        await self.bus.cast(Target(TOPIC, server=host),
                            TerminateInstance(instance_id=instance_id), ctx=ctx)
