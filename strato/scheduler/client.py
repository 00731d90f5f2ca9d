"""Typed client of the scheduler, over the bus."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.context import RequestContext
from strato.domain.ids import HostName
from strato.domain.requests import BootRequest, Selection
from strato.rpc.bus import Bus, Target
from strato.scheduler.messages import TOPIC, SelectDestinations

__all__ = ["SchedulerClient"]


@dataclass(frozen=True, slots=True)
class SchedulerClient:
    bus: Bus
    timeout: float = 60.0

    async def select_destinations(self, ctx: RequestContext, requests: tuple[BootRequest, ...],
                                  *, exclude_hosts: tuple[HostName, ...] = ()
                                  ) -> list[Selection]:
        """A claimed destination (plus alternates) per request; NoValidHost otherwise."""
        msg = SelectDestinations(requests=requests, exclude_hosts=exclude_hosts)
        result: list[Selection] = await self.bus.call(
            Target(TOPIC), msg, ctx=ctx, returns=list[Selection], timeout=self.timeout)
        return result
