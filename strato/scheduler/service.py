"""The scheduler service: answers ``SelectDestinations`` by filtering, weighing and
claiming resources atomically in the database (so two schedulers, or two requests, can
never oversubscribe a node)."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from strato.domain.context import RequestContext
from strato.domain.errors import NoValidHost
from strato.domain.requests import BootRequest, Destination, Selection
from strato.domain.resources import NodeUsage
from strato.scheduler.messages import SelectDestinations
from strato.scheduler.select import Ranking, RequestSpec, explain, rank_nodes

if TYPE_CHECKING:
    from strato.db.uow import Database
    from strato.rpc.bus import HandlerTable

__all__ = ["SchedulerDeps", "handlers", "select_destinations"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class SchedulerDeps:
    db: Database
    # One decision at a time per scheduler process: each request then reads the usage
    # the previous one claimed, so concurrent requests spread instead of all picking the
    # same "emptiest" host. Several scheduler processes stay correct (claims are atomic in
    # the database); they may only spread less evenly.
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)


def handlers(deps: SchedulerDeps) -> HandlerTable:
    """The scheduler's routing table."""
    return {SelectDestinations: partial(select_destinations, deps=deps)}


async def select_destinations(ctx: RequestContext, msg: SelectDestinations, *,
                              deps: SchedulerDeps) -> list[Selection]:
    """Claim a node for every request, all or none; raise NoValidHost with reasons."""
    del ctx
    async with deps.lock:
        nodes = {(n.host, n.node): n for n in await deps.db.nodes.usages()}
        selections: list[Selection] = []
        try:
            for req in msg.requests:
                selections.append(await _place(req, nodes, msg, deps))
        except BaseException:
            for done in selections:
                await deps.db.nodes.release(done.instance_id)
            raise
        return selections


async def _place(req: BootRequest, nodes: dict[tuple[str, str], NodeUsage],
                 msg: SelectDestinations, deps: SchedulerDeps) -> Selection:
    spec = RequestSpec(need=req.flavor.resources, hints=req.hints,
                       exclude_hosts=frozenset((*msg.exclude_hosts, *req.retry.hosts)))
    ranking = rank_nodes(list(nodes.values()), spec)
    for i, node in enumerate(ranking.candidates):
        dest = Destination(host=node.host, node=node.node)
        if await deps.db.nodes.claim(req.instance_id, dest, spec.need):
            # Later requests of this batch see this one's consumption.
            nodes[(node.host, node.node)] = replace(node, used=node.used + spec.need,
                                                    instances=node.instances + 1)
            logger.info("instance %s placed on %s/%s", req.instance_id, node.host, node.node)
            return Selection(instance_id=req.instance_id, chosen=dest,
                             alternates=_alternates(ranking, i, msg.alternates))
    raise NoValidHost(explain(ranking.rejections, len(nodes)))


def _alternates(ranking: Ranking, chosen: int, count: int) -> tuple[Destination, ...]:
    """Up to ``count`` next-best nodes, each on a host other than the chosen one's."""
    seen = {ranking.candidates[chosen].host}
    out: list[Destination] = []
    for node in ranking.candidates[chosen + 1:]:
        if len(out) == count:
            break
        if node.host not in seen:
            seen.add(node.host)
            out.append(Destination(host=node.host, node=node.node))
    return tuple(out)
