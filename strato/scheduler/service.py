"""The scheduler service: answers ``SelectDestinations`` by filtering and weighing the
host-state cache and claiming resources atomically in the database (so two schedulers,
or two requests, can never oversubscribe a node).

Decisions are made one at a time per scheduler process, on the cache plus the claims
this process has decided but not yet written, so concurrent requests spread over hosts
instead of all picking the same emptiest one. The database claim happens outside that
critical section: it can wait behind other writers without stalling every other
decision. A claim that loses a race (another scheduler got there first) is decided
again on fresher state.

A refusal is explained: the instance's fault says, filter by filter, how many hosts each
removed and why; operators see it host by host (the fault's details, and this service's
log line for the request id).
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import partial
from typing import TYPE_CHECKING

from strato.domain.context import RequestContext
from strato.domain.errors import NotFound, NoValidHost
from strato.domain.ids import GroupId, HostName, InstanceId
from strato.domain.requests import BootRequest, Destination, Selection
from strato.rpc.contracts.scheduler import HostsChanged, Placements, Refusal, SelectDestinations
from strato.scheduler.filters import DEFAULT_FILTERS, HostFilter, resolve_filters
from strato.scheduler.hoststate import CacheSettings, HostStateCache, NodeKey
from strato.scheduler.select import choose, explain, rank
from strato.scheduler.state import GroupPlacement, HostState, RequestSpec
from strato.scheduler.weighers import DEFAULT_MULTIPLIERS

if TYPE_CHECKING:
    from strato.db.ports import Database
    from strato.rpc.bus import HandlerTable

__all__ = ["SchedulerDeps", "SchedulerPolicy", "fanout_handlers", "handlers",
           "select_destinations"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerPolicy:
    """How hosts are chosen (``scheduler.*`` settings)."""

    filters: tuple[str, ...] = DEFAULT_FILTERS
    multipliers: Mapping[str, float] = field(default_factory=lambda: dict(DEFAULT_MULTIPLIERS))
    host_subset_size: int = 1
    # Alternates returned with each choice: max_attempts - 1.
    alternates: int = 2
    # Times one request is decided again after its claim lost a race.
    claim_retries: int = 5


class SchedulerDeps:
    """One scheduler process's state: its cache, its lock, its pending group choices."""

    def __init__(self, db: Database, policy: SchedulerPolicy | None = None,
                 cache: CacheSettings | None = None, *,
                 rng: random.Random | None = None) -> None:
        self.db = db
        self.policy = policy = policy or SchedulerPolicy()
        self.filters: tuple[HostFilter, ...] = resolve_filters(policy.filters)
        self.cache = HostStateCache(db, cache or CacheSettings())
        self.lock = asyncio.Lock()
        self.rng = rng or random.Random()
        # Group members this process placed whose claim is not written yet.
        self.group_choices: dict[GroupId, dict[InstanceId, HostName]] = {}


def handlers(deps: SchedulerDeps) -> HandlerTable:
    """The scheduler's routing table."""
    return {SelectDestinations: partial(select_destinations, deps=deps)}


def fanout_handlers(deps: SchedulerDeps) -> HandlerTable:
    """What every scheduler receives on :data:`FANOUT_TOPIC`."""
    return {HostsChanged: partial(hosts_changed, deps=deps)}


async def hosts_changed(ctx: RequestContext, msg: HostsChanged, *,
                        deps: SchedulerDeps) -> None:
    del ctx
    logger.info("hosts changed (%s): reading them again before the next decision",
                msg.reason)
    deps.cache.invalidate()


async def select_destinations(ctx: RequestContext, msg: SelectDestinations, *,
                              deps: SchedulerDeps) -> Placements:
    """Claim a node for each request; all of them, or at least ``min_count``."""
    del ctx
    wanted = len(msg.requests) if msg.min_count is None else \
        max(1, min(msg.min_count, len(msg.requests)))
    placed: list[Selection] = []
    refusals: list[Refusal] = []
    try:
        for req in msg.requests:
            try:
                placed.append(await _place(req, msg, deps))
            except NoValidHost as exc:
                refusals.append(Refusal(instance_id=req.instance_id, message=exc.message,
                                        details=exc.details or exc.message))
                if len(msg.requests) - len(refusals) < wanted:
                    break  # min_count cannot be reached any more
        if len(placed) < wanted:
            raise _not_enough(refusals[0], len(placed), len(msg.requests), wanted)
    except BaseException:
        for done in placed:
            await deps.db.nodes.release(done.instance_id)
        raise
    return Placements(selections=tuple(placed), refusals=tuple(refusals))


def _not_enough(first: Refusal, placed: int, requested: int, wanted: int) -> NoValidHost:
    if requested == 1:
        return NoValidHost(first.message, details=first.details)
    tail = (f" Only {placed} of the {requested} instances requested could be placed"
            f"{f' (at least {wanted} required)' if wanted < requested else ''}.")
    return NoValidHost(first.message + tail, details=first.details + "\n" + tail.strip())


async def _place(req: BootRequest, msg: SelectDestinations, deps: SchedulerDeps) -> Selection:
    need = req.flavor.resources
    for _ in range(deps.policy.claim_retries):
        async with deps.lock:
            spec = await _spec(req, msg, deps)
            chosen, alternates = await _decide(req, spec, deps)
            key: NodeKey = (chosen.host, chosen.node)
            deps.cache.consume(key, req.instance_id, need)
            if req.hints.group is not None:
                deps.group_choices.setdefault(req.hints.group, {})[req.instance_id] = \
                    chosen.host
        dest = _destination(chosen)
        record = None
        try:
            record = await deps.db.nodes.claim_node(req.instance_id, dest, need)
        except NotFound:
            pass  # the node went away: decide again
        finally:
            deps.cache.settle(key, req.instance_id, record)
            if req.hints.group is not None:
                deps.group_choices.get(req.hints.group, {}).pop(req.instance_id, None)
        if record is not None:
            logger.info("instance %s placed on %s/%s (alternates: %s)", req.instance_id,
                        dest.host, dest.node,
                        ", ".join(a.host for a in alternates) or "none")
            return Selection(instance_id=req.instance_id, chosen=dest,
                             alternates=tuple(_destination(a) for a in alternates))
        logger.info("claim on %s/%s lost a race; deciding again", dest.host, dest.node)
    raise NoValidHost(f"No valid host was found: claims kept losing races with other "
                      f"schedulers after {deps.policy.claim_retries} tries.")


async def _decide(req: BootRequest, spec: RequestSpec,
                  deps: SchedulerDeps) -> tuple[HostState, tuple[HostState, ...]]:
    policy = deps.policy
    top = policy.host_subset_size + policy.alternates + 8
    states = await deps.cache.states()
    ranking = rank(states.values(), spec, deps.filters, policy.multipliers, top=top)
    if not ranking.candidates:
        # The cache may lag behind a release (a delete a moment ago): look again.
        states = await deps.cache.states(fresh=True)
        ranking = rank(states.values(), spec, deps.filters, policy.multipliers, top=top)
    if not ranking.candidates:
        why = explain(ranking, spec)
        logger.warning("instance %s: %s", req.instance_id, why.details)
        raise NoValidHost(why.message, details=why.details)
    return choose(ranking.candidates, subset_size=policy.host_subset_size,
                  alternates=policy.alternates, rng=deps.rng)


async def _spec(req: BootRequest, msg: SelectDestinations, deps: SchedulerDeps) -> RequestSpec:
    group = None
    if req.hints.group is not None:
        try:
            members = await deps.db.placement.group_members(req.hints.group)
        except NotFound:
            raise NoValidHost(f"No valid host was found: server group {req.hints.group} "
                              f"no longer exists.") from None
        hosts: dict[HostName, int] = {}
        placed = {**members.hosts, **deps.group_choices.get(req.hints.group, {})}
        for instance_id, host in placed.items():
            if instance_id != req.instance_id:
                hosts[host] = hosts.get(host, 0) + 1
        group = GroupPlacement(id=members.group.id, policy=members.group.policy,
                               max_server_per_host=members.group.max_server_per_host,
                               hosts=hosts)
    return RequestSpec(need=req.flavor.resources, flavor=req.flavor, image=req.image,
                       hints=req.hints, group=group,
                       exclude_hosts=frozenset((*msg.exclude_hosts, *req.retry.hosts)))


def _destination(state: HostState) -> Destination:
    return Destination(host=state.host, node=state.node,
                       availability_zone=state.availability_zone)
