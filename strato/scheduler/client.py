"""Typed client of the scheduler, over the bus."""

from __future__ import annotations

from dataclasses import dataclass

from strato.domain.context import RequestContext
from strato.domain.ids import HostName
from strato.domain.requests import BootRequest
from strato.rpc.bus import Bus, Target
from strato.rpc.contracts.scheduler import TOPIC, Placements, SelectDestinations

__all__ = ["SchedulerClient"]


@dataclass(frozen=True, slots=True)
class SchedulerClient:
    bus: Bus
    timeout: float = 60.0

    async def select_destinations(self, ctx: RequestContext, requests: tuple[BootRequest, ...],
                                  *, exclude_hosts: tuple[HostName, ...] = (),
                                  min_count: int | None = None) -> Placements:
        """A claimed destination (plus alternates) per placed request; ``NoValidHost``
        when fewer than ``min_count`` (default: all) fit."""
        msg = SelectDestinations(requests=requests, exclude_hosts=exclude_hosts,
                                 min_count=min_count)
        result: Placements = await self.bus.call(
            Target(TOPIC), msg, ctx=ctx, returns=Placements, timeout=self.timeout)
        return result
