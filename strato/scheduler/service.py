"""The scheduler service: answers ``SelectDestinations`` by filtering, weighing and
claiming resources atomically in the database (so two schedulers, or two requests, can
never oversubscribe a node).

Decisions are made one at a time per scheduler process, on a fresh read of the nodes'
usage plus the claims this process has decided but not yet written (Nova's
``consume_from_request``), so concurrent requests spread over hosts instead of all
picking the same emptiest one. The database claim itself happens outside that critical
section: it can wait behind other writers without stalling every other decision. A claim
that loses a race (another scheduler process got there first) is decided again.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import partial
from typing import TYPE_CHECKING

from strato.domain.context import RequestContext
from strato.domain.errors import NoValidHost
from strato.domain.ids import HostName, InstanceId, NodeName
from strato.domain.requests import BootRequest, Destination, Selection
from strato.domain.resources import NodeUsage, Resources
from strato.scheduler.messages import SelectDestinations
from strato.scheduler.select import Ranking, RequestSpec, explain, rank_nodes

if TYPE_CHECKING:
    from strato.db.uow import Database
    from strato.rpc.bus import HandlerTable

__all__ = ["SchedulerDeps", "handlers", "select_destinations"]

logger = logging.getLogger(__name__)

# Times one request is decided again after its claim lost a race.
_CLAIM_RETRIES = 5

NodeKey = tuple[HostName, NodeName]


@dataclass
class _Pending:
    """Claims decided by this process whose database write has not finished yet."""

    claims: dict[InstanceId, tuple[NodeKey, Resources]] = field(default_factory=dict)
    settled: asyncio.Event = field(default_factory=asyncio.Event)

    def apply(self, nodes: dict[NodeKey, NodeUsage]) -> None:
        for key, need in self.claims.values():
            if key in nodes:
                node = nodes[key]
                nodes[key] = replace(node, used=node.used + need, instances=node.instances + 1)

    def done(self, instance_id: InstanceId) -> None:
        self.claims.pop(instance_id, None)
        if not self.claims:
            self.settled.set()


@dataclass(frozen=True, slots=True)
class SchedulerDeps:
    db: Database
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    pending: _Pending = field(default_factory=_Pending)


def handlers(deps: SchedulerDeps) -> HandlerTable:
    """The scheduler's routing table."""
    return {SelectDestinations: partial(select_destinations, deps=deps)}


async def select_destinations(ctx: RequestContext, msg: SelectDestinations, *,
                              deps: SchedulerDeps) -> list[Selection]:
    """Claim a node for every request, all or none; raise NoValidHost with reasons."""
    del ctx
    selections: list[Selection] = []
    try:
        for req in msg.requests:
            selections.append(await _place(req, msg, deps))
    except BaseException:
        for done in selections:
            await deps.db.nodes.release(done.instance_id)
        raise
    return selections


async def _place(req: BootRequest, msg: SelectDestinations, deps: SchedulerDeps) -> Selection:
    spec = RequestSpec(need=req.flavor.resources, hints=req.hints,
                       exclude_hosts=frozenset((*msg.exclude_hosts, *req.retry.hosts)))
    for _ in range(_CLAIM_RETRIES):
        selection = await _decide(req, spec, msg.alternates, deps)
        try:
            if await deps.db.nodes.claim(req.instance_id, selection.chosen, spec.need):
                logger.info("instance %s placed on %s/%s", req.instance_id,
                            selection.chosen.host, selection.chosen.node)
                return selection
        finally:
            deps.pending.done(req.instance_id)
        logger.info("claim on %s lost a race; deciding again", selection.chosen.node)
    raise NoValidHost(f"No valid host was found: claims kept losing races with other "
                      f"schedulers after {_CLAIM_RETRIES} tries.")


async def _decide(req: BootRequest, spec: RequestSpec, alternates: int,
                  deps: SchedulerDeps) -> Selection:
    """Choose a node under the lock and record it as pending."""
    async with deps.lock:
        ranking, considered = await _rank(spec, deps)
        if not ranking.candidates and deps.pending.claims:
            # Claims in flight are counted twice for a moment (pending, and already
            # written); let them settle before saying there is no room.
            deps.pending.settled.clear()
            await deps.pending.settled.wait()
            ranking, considered = await _rank(spec, deps)
        if not ranking.candidates:
            raise NoValidHost(explain(ranking.rejections, considered))
        best = ranking.candidates[0]
        chosen = Destination(host=best.host, node=best.node)
        deps.pending.claims[req.instance_id] = ((best.host, best.node), spec.need)
        deps.pending.settled.clear()
        return Selection(instance_id=req.instance_id, chosen=chosen,
                         alternates=_alternates(ranking.candidates, alternates))


async def _rank(spec: RequestSpec, deps: SchedulerDeps) -> tuple[Ranking, int]:
    nodes = {(n.host, n.node): n for n in await deps.db.nodes.usages()}
    deps.pending.apply(nodes)
    return rank_nodes(list(nodes.values()), spec), len(nodes)


def _alternates(candidates: Sequence[NodeUsage], count: int) -> tuple[Destination, ...]:
    """Up to ``count`` next-best nodes, each on a host other than the chosen one's."""
    seen = {candidates[0].host}
    out: list[Destination] = []
    for node in candidates[1:]:
        if len(out) == count:
            break
        if node.host not in seen:
            seen.add(node.host)
            out.append(Destination(host=node.host, node=node.node))
    return tuple(out)
