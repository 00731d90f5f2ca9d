"""The compute's periodic checks against the truth: the resource audit (the seeds'
``update_available_resource``) and the power-state sync (Nova's ``_sync_power_states``).

The resource audit rebuilds the tracker's account from the instances the conductor says
are on this host, then asks the conductor to heal the database's allocations both ways
(see ``NodeRepo.heal_host``): an allocation of an instance that was deleted or moved is
removed, an instance running here without one gets it.

The power-state sync compares, for every instance on this host with no task in progress,
what the hypervisor says with what the database says. The database follows the
hypervisor's power state; a guest that stopped behind strato's back (ACTIVE, but shut
down or crashed) becomes STOPPED, so the API shows SHUTOFF; a guest that vanished while
ACTIVE is recorded as NOSTATE and logged. An instance with a task in progress is never
changed: its task owns it.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from strato.compute.tracker import TrackerDrift
from strato.db.ports import AllocationHealing
from strato.domain.context import RequestContext, admin_context
from strato.domain.errors import InvalidState, NotFound
from strato.domain.ids import InstanceId, NodeName
from strato.domain.instances import Instance, InstanceChanges, PowerState, VmState, holds_resources
from strato.domain.resources import Resources
from strato.log import bind_context, bind_instance

if TYPE_CHECKING:
    from strato.compute.deps import ComputeDeps

__all__ = ["AuditReport", "PowerSync", "held_resources", "sync_instance_power_state",
           "sync_power_states", "unknown_guests", "update_available_resource"]

logger = logging.getLogger(__name__)

# The vm_state a guest's power state stands for, when the hypervisor is believed over the
# database (an action that a restart cut off).
_VM_STATE_OF_POWER = {PowerState.RUNNING: VmState.ACTIVE, PowerState.SHUTDOWN: VmState.STOPPED,
                      PowerState.CRASHED: VmState.STOPPED, PowerState.PAUSED: VmState.PAUSED,
                      PowerState.SUSPENDED: VmState.SUSPENDED}
_SETTLED = frozenset(_VM_STATE_OF_POWER.values())
# States whose power state the sync records (a building or deleted one has none to sync).
_SYNCED = _SETTLED | {VmState.ERROR}


@dataclass(frozen=True, slots=True, kw_only=True)
class AuditReport:
    """What one resource audit found and changed."""

    tracked: int
    drift: TrackerDrift
    unknown_guests: tuple[InstanceId, ...]
    healing: AllocationHealing = field(default_factory=AllocationHealing)


@dataclass(frozen=True, slots=True, kw_only=True)
class PowerSync:
    """One instance whose database record the power-state sync changed."""

    instance_id: InstanceId
    vm_state: tuple[VmState, VmState]          # before, after
    power_state: tuple[PowerState, PowerState]  # before, after


def held_resources(deps: ComputeDeps, instances: Iterable[Instance]
                   ) -> dict[InstanceId, tuple[NodeName, Resources]]:
    """What the instances on this host hold, node by node (``holds_resources``)."""
    held: dict[InstanceId, tuple[NodeName, Resources]] = {}
    nodes = list(deps.tracker.capacities)
    for instance in instances:
        if instance.host != deps.host or not holds_resources(instance):
            continue
        if instance.node in deps.tracker.capacities:
            node = instance.node
        elif len(nodes) == 1:
            node = nodes[0]
        else:
            logger.warning("instance %s is on node %s, which this host does not have; not "
                           "counted", instance.id, instance.node)
            continue
        held[instance.id] = (node, instance.flavor.resources
                             + deps.driver.instance_overhead(instance.flavor))
    return held


def unknown_guests(instances: Iterable[Instance],
                   guests: Sequence[InstanceId]) -> tuple[InstanceId, ...]:
    """The guests the hypervisor runs for no instance strato has on this host."""
    known = {instance.id for instance in instances}
    return tuple(sorted(guest for guest in guests if guest not in known))


def warn_unknown(guests: Iterable[InstanceId]) -> None:
    for guest in guests:
        logger.warning("unknown domain %s on this host left running; not managed by strato",
                       guest)


async def update_available_resource(deps: ComputeDeps) -> AuditReport:
    """Rebuild the tracker from the instances on this host, then heal the database's
    allocations of this host; what was healed is logged."""
    ctx = admin_context()
    with bind_context(ctx):
        since = deps.tracker.mark()
        deps.tracker.update_capacities(tuple(await deps.driver.node_capacities()))
        instances = await deps.conductor.instances_on_host(ctx, deps.host)
        unknown = unknown_guests(instances, await deps.driver.list_instances())
        drift = deps.tracker.rebuild(held_resources(deps, instances), since=since)
        if drift.added or drift.dropped:
            logger.warning("resource audit: the tracker now counts %s and no longer %s",
                           list(drift.added), list(drift.dropped))
        warn_unknown(unknown)
        healing = await deps.conductor.heal_allocations(ctx, deps.host)
        _log_healing(healing)
        stats = deps.tracker.statistics()
        logger.info("resource audit: %d instance(s) use %s on %d node(s)", stats.instances,
                    stats.used, stats.nodes)
        return AuditReport(tracked=stats.instances, drift=drift, unknown_guests=unknown,
                           healing=healing)


def _log_healing(healing: AllocationHealing) -> None:
    for healed in healing.removed:
        a = healed.allocation
        logger.warning("resource audit: removed the allocation of instance %s on %s (%s): %s",
                       a.instance_id, a.node, a.resources, healed.reason)
    for healed in healing.created:
        a = healed.allocation
        logger.warning("resource audit: created an allocation for instance %s on %s (%s): %s",
                       a.instance_id, a.node, a.resources, healed.reason)
    for note in healing.skipped:
        logger.warning("resource audit: left alone: %s", note)


async def sync_power_states(deps: ComputeDeps) -> list[PowerSync]:
    """Sync the power state of every instance on this host that has no task."""
    ctx = admin_context()
    synced: list[PowerSync] = []
    with bind_context(ctx):
        for instance in await deps.conductor.instances_on_host(ctx, deps.host):
            if instance.task_state is not None or instance.vm_state not in _SYNCED:
                continue
            change = await sync_instance_power_state(ctx, deps, instance.id)
            if change is not None:
                synced.append(change)
    if synced:
        logger.info("power-state sync changed %d instance(s)", len(synced))
    return synced


async def sync_instance_power_state(ctx: RequestContext, deps: ComputeDeps,
                                    instance_id: InstanceId, *,
                                    adopt: bool = False) -> PowerSync | None:
    """Bring the instance's record in line with its guest, if it has no task (read again
    under the instance's lock, so no action of this host runs meanwhile); with ``adopt``
    the vm_state follows the guest's power state too (an action a restart cut off)."""
    with bind_instance(instance_id):
        async with deps.locks.hold(instance_id):
            try:
                instance = await deps.conductor.get_instance(ctx, instance_id)
            except NotFound:
                return None
            if (instance.host != deps.host or instance.task_state is not None
                    or instance.vm_state not in _SYNCED):
                return None
            power = await _power_state(deps, instance_id)
            changes = _power_changes(instance, power, adopt=adopt)
            if not changes:
                return None
            try:
                updated = await deps.conductor.update_instance(ctx, instance_id, changes,
                                                               expected_task_state=(None,))
            except (InvalidState, NotFound) as exc:
                logger.info("power-state sync skipped: %s", exc)
                return None
            return PowerSync(instance_id=instance_id,
                             vm_state=(instance.vm_state, updated.vm_state),
                             power_state=(instance.power_state, updated.power_state))


async def _power_state(deps: ComputeDeps, instance_id: InstanceId) -> PowerState:
    try:
        return (await deps.driver.get_info(instance_id)).power_state
    except NotFound:
        return PowerState.NOSTATE


def _power_changes(instance: Instance, power: PowerState, *, adopt: bool) -> InstanceChanges:
    """What to write for a guest in ``power``, as Nova's ``_sync_instance_power_state``."""
    changes: InstanceChanges = {}
    if power != instance.power_state:
        changes["power_state"] = power
    vm_state = instance.vm_state
    follows = _VM_STATE_OF_POWER.get(power)
    if adopt and vm_state in _SETTLED and follows is not None:
        if follows != vm_state:
            changes["vm_state"] = follows
            logger.warning("instance.power.sync: the guest is %s: vm_state %s -> %s",
                           power.name, vm_state, follows)
    elif vm_state == VmState.ACTIVE and power in (PowerState.SHUTDOWN, PowerState.CRASHED):
        changes["vm_state"] = VmState.STOPPED
        logger.warning("instance.power.sync: the guest stopped behind strato's back (%s); "
                       "vm_state active -> stopped", power.name)
    elif "power_state" not in changes:
        pass
    elif vm_state == VmState.ACTIVE and power == PowerState.NOSTATE:
        logger.warning("instance.power.sync: the guest of this active instance is missing "
                       "from the hypervisor")
    elif vm_state in _SETTLED and follows is not None and follows != vm_state:
        logger.warning("instance.power.sync: vm_state %s but the guest is %s; only the power "
                       "state is recorded", vm_state, power.name)
    else:
        logger.info("instance.power.sync: power state %s -> %s", instance.power_state.name,
                    power.name)
    return changes
