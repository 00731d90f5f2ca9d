"""Typed client of the compute services, over the bus (one topic per host)."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.context import RequestContext
from strato.domain.ids import HostName, InstanceId
from strato.rpc.bus import Bus, Target
from strato.rpc.contracts.compute import (
    TOPIC,
    BuildAndRunInstance,
    GetConsoleOutput,
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

__all__ = ["ComputeClient", "ServerAction"]

# The server actions a compute runs once the API has set the instance's task state.
ServerAction = (RebootInstance | StopInstance | StartInstance | PauseInstance
                | UnpauseInstance | SuspendInstance | ResumeInstance | RebuildInstance
                | SoftDeleteInstance | RestoreInstance)


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

    async def perform_action(self, ctx: RequestContext, host: HostName,
                             msg: ServerAction) -> None:
        """Hand a server action (reboot, stop, rebuild ...) to the instance's host."""
        await self.bus.cast(Target(TOPIC, server=host), msg, ctx=ctx)

    async def console_output(self, ctx: RequestContext, host: HostName,
                             instance_id: InstanceId, length: int | None, *,
                             timeout: float = 30.0) -> str:
        """The tail of the guest's console (all of it when ``length`` is None)."""
        text: str = await self.bus.call(
            Target(TOPIC, server=host), GetConsoleOutput(instance_id=instance_id, length=length),
            ctx=ctx, returns=str, timeout=timeout)
        return text
