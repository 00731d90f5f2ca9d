"""Server actions (``POST /v2.1/servers/{id}/action``): reboot, os-stop, os-start, pause,
unpause, suspend, resume, rebuild, lock and unlock (microversion 2.1).

Each follows Nova's compute API: the lock check (a locked server refuses everyone but
admins), the vm_state table, then a compare-and-swap of the task state from none to the
action's task, so of two racing actions exactly one starts (the other is a 409). The
action is recorded (``os-instance-actions``) and one message is cast to the instance's
compute host, which runs the driver and clears the task (``strato.compute.lifecycle``).
Lock and unlock only write the instance's row. The bodies are parsed by
``strato.api.servers.action_schemas``.

Conflicts use Nova's words: "Cannot 'reboot' instance <id> while it is in vm_state
stopped" (``raise_http_conflict_for_instance_invalid_state``) and "Instance <id> is
locked" (``InstanceIsLocked``).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from strato.api.deps import ApiDeps
from strato.api.servers.action_schemas import (
    no_arguments,
    parse_lock,
    parse_reboot,
    parse_rebuild,
)
from strato.api.servers.service import (
    BootInputs,
    boot_request,
    check_fit,
    check_lock_and_state,
    delete_server,
    get_server,
    resolve_image,
)
from strato.api.servers.views import generate_password
from strato.compute.client import ServerAction
from strato.domain.actions import EventResult
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid, InvalidState, NotFound, StratoError
from strato.domain.ids import InstanceId, NodeName
from strato.domain.instances import Instance, InstanceChanges, TaskState, VmState
from strato.rpc.contracts.compute import (
    PauseInstance,
    RebootInstance,
    RebuildInstance,
    RestoreInstance,
    ResumeInstance,
    SoftDeleteInstance,
    StartInstance,
    StopInstance,
    SuspendInstance,
    UnpauseInstance,
)

__all__ = ["ACTIONS", "RebuildResult", "delete", "lock", "perform", "rebuild", "unlock"]

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True, kw_only=True)
class _Rule:
    """One power action: Nova's name for it (messages, instance actions), the vm_states
    it starts from, its task state and the message the compute receives."""

    name: str
    vm_states: frozenset[VmState]
    task: TaskState
    message: Callable[[InstanceId], ServerAction]


_A = VmState.ACTIVE
# Nova's check_instance_state tables (nova/compute/api.py).
_RULES: dict[str, _Rule] = {
    "os-stop": _Rule(name="stop", vm_states=frozenset({_A, VmState.ERROR}),
                     task=TaskState.POWERING_OFF,
                     message=lambda iid: StopInstance(instance_id=iid)),
    "os-start": _Rule(name="start", vm_states=frozenset({VmState.STOPPED}),
                      task=TaskState.POWERING_ON,
                      message=lambda iid: StartInstance(instance_id=iid)),
    "pause": _Rule(name="pause", vm_states=frozenset({_A}), task=TaskState.PAUSING,
                   message=lambda iid: PauseInstance(instance_id=iid)),
    "unpause": _Rule(name="unpause", vm_states=frozenset({VmState.PAUSED}),
                     task=TaskState.UNPAUSING,
                     message=lambda iid: UnpauseInstance(instance_id=iid)),
    "suspend": _Rule(name="suspend", vm_states=frozenset({_A}), task=TaskState.SUSPENDING,
                     message=lambda iid: SuspendInstance(instance_id=iid)),
    "resume": _Rule(name="resume", vm_states=frozenset({VmState.SUSPENDED}),
                    task=TaskState.RESUMING,
                    message=lambda iid: ResumeInstance(instance_id=iid)),
    "restore": _Rule(name="restore", vm_states=frozenset({VmState.SOFT_DELETED}),
                     task=TaskState.RESTORING,
                     message=lambda iid: RestoreInstance(instance_id=iid)),
}
# A delete while reclaim_instance_interval > 0 (Nova's soft_delete): from any state a
# guest exists in; the action is recorded as "delete", as Nova does.
_SOFT_DELETE = _Rule(name="delete", vm_states=frozenset({_A, VmState.STOPPED, VmState.PAUSED,
                                                         VmState.SUSPENDED, VmState.ERROR}),
                     task=TaskState.SOFT_DELETING,
                     message=lambda iid: SoftDeleteInstance(instance_id=iid))
_SOFT_REBOOT = _Rule(name="reboot", vm_states=frozenset({_A}), task=TaskState.REBOOTING,
                     message=lambda iid: RebootInstance(instance_id=iid))
_HARD_REBOOT = _Rule(name="reboot", vm_states=frozenset({_A, VmState.STOPPED, VmState.PAUSED,
                                                         VmState.SUSPENDED, VmState.ERROR}),
                     task=TaskState.REBOOTING_HARD,
                     message=lambda iid: RebootInstance(instance_id=iid, hard=True))
_REBUILD_STATES = frozenset({_A, VmState.STOPPED, VmState.ERROR})

# Every action this module answers; the route keeps os-getConsoleOutput.
ACTIONS = frozenset({*_RULES, "reboot", "rebuild", "lock", "unlock"})


async def soft_delete(deps: ApiDeps, ctx: RequestContext, instance: Instance) -> bool:
    """Soft-delete ``instance`` if it qualifies (a guest on a host, no task running, not
    already soft-deleted); whether it did. Otherwise the caller deletes it for good."""
    if (instance.host is None or instance.task_state is not None
            or instance.vm_state not in _SOFT_DELETE.vm_states
            or (instance.vm_state == VmState.ERROR and instance.launched_at is None)):
        return False
    instance = await _start(deps, ctx, instance, _SOFT_DELETE.name, _SOFT_DELETE.vm_states,
                            _SOFT_DELETE.task)
    await _cast(deps, ctx, instance, _SOFT_DELETE.task, _SOFT_DELETE.message(instance.id))
    return True


# --- power actions ----------------------------------------------------------------------

async def perform(deps: ApiDeps, ctx: RequestContext, server_id: str, action: str,
                  args: Any) -> None:
    """Start ``reboot`` or one of the argument-less power actions (``os-stop`` ...):
    the compute host finishes it (202)."""
    if action == "reboot":
        rule = _HARD_REBOOT if parse_reboot(args) else _SOFT_REBOOT
    else:
        rule = _RULES[action]
        no_arguments(action, args)
    instance = await get_server(deps, ctx, server_id)
    instance = await _start(deps, ctx, instance, rule.name, rule.vm_states, rule.task)
    await _cast(deps, ctx, instance, rule.task, rule.message(instance.id))


def _check_allowed(instance: Instance, ctx: RequestContext, name: str,
                   vm_states: frozenset[VmState]) -> None:
    """Nova's order: the lock, then the vm_state, then no task in progress, then a host."""
    check_lock_and_state(instance, ctx, name, vm_states)
    if instance.host is None or instance.node is None:
        # An ERROR server that never reached a host has no guest to act on.
        raise InvalidState(f"Instance {instance.id} is not ready")


async def _start(deps: ApiDeps, ctx: RequestContext, instance: Instance, name: str,
                 vm_states: frozenset[VmState], task: TaskState) -> Instance:
    """Check the action may start, then claim the instance for it: a compare-and-swap
    of the task state from none. The row after the write is checked again, so a state
    or lock change between the read and the write cannot slip through."""
    _check_allowed(instance, ctx, name, vm_states)
    try:
        claimed = await deps.db.instances.update(instance.id, {"task_state": task},
                                                 expected_task_state=(None,))
    except NotFound:
        raise NotFound(f"Instance {instance.id} could not be found.") from None
    except InvalidState:
        # Another action (or a delete) won the race: answer as if we had read its state.
        _check_allowed(await get_server(deps, ctx, instance.id), ctx, name, vm_states)
        # ... which has already finished: still a conflict, the client may try again.
        raise InvalidState(f"Cannot '{name}' instance {instance.id} while another action "
                           "is in progress") from None
    try:
        _check_allowed(replace(claimed, task_state=None), ctx, name, vm_states)
    except InvalidState:
        await _give_back(deps, instance.id, task)
        raise
    await deps.db.actions.start_action(instance_id=instance.id, action=name,
                                       request_id=ctx.request_id, user_id=ctx.user_id,
                                       project_id=ctx.project_id)
    return claimed


async def _give_back(deps: ApiDeps, instance_id: InstanceId, task: TaskState) -> None:
    """Clear the task state we set (unless someone, a delete, moved it on since)."""
    with contextlib.suppress(InvalidState, NotFound):
        await deps.db.instances.update(instance_id, {"task_state": None},
                                       expected_task_state=(task,))


async def _cast(deps: ApiDeps, ctx: RequestContext, instance: Instance, task: TaskState,
                message: ServerAction) -> None:
    """Hand the action to the instance's compute host; if the bus refuses it, give the
    task state back so the server is not stuck and the client may retry."""
    assert instance.host is not None  # _check_allowed: an action needs a host
    try:
        await deps.compute.perform_action(ctx, instance.host, message)
    except StratoError:
        await _give_back(deps, instance.id, task)
        raise
    logger.info("instance.%s: %s sent to compute %s", task, instance.id, instance.host)


# --- rebuild ----------------------------------------------------------------------------

@dataclass(frozen=True, slots=True, kw_only=True)
class RebuildResult:
    """The server as the rebuild left it in the database, and its new admin password
    (Nova answers both)."""

    instance: Instance
    admin_pass: str


async def rebuild(deps: ApiDeps, ctx: RequestContext, server_id: str,
                  args: Any) -> RebuildResult:
    """Nova's rebuild on the same host: the image (active, fitting the server's flavor)
    becomes the server's, with a new name and metadata when given; the compute destroys
    the guest and spawns it again from that image (its claim unchanged)."""
    body = parse_rebuild(args)
    limit = deps.settings.max_metadata_items
    if body.metadata is not None and len(body.metadata) > limit:
        raise Invalid(f"Quota exceeded for metadata_items: at most {limit} items allowed")
    instance = await get_server(deps, ctx, server_id)
    _check_allowed(instance, ctx, "rebuild", _REBUILD_STATES)
    image = await resolve_image(deps, ctx, body.image_ref)
    check_fit(instance.flavor, image)
    task = TaskState.REBUILDING
    await _start(deps, ctx, instance, "rebuild", _REBUILD_STATES, task)
    changes: InstanceChanges = {"image_ref": image.id}
    if body.name is not None:
        changes["display_name"] = body.name
    if body.metadata is not None:
        changes["metadata"] = dict(body.metadata)
    try:
        instance = await deps.db.instances.update(instance.id, changes,
                                                  expected_task_state=(task,))
    except (InvalidState, NotFound):
        # Deleted between our two writes: the delete wins, as it would on the compute.
        raise NotFound(f"Instance {instance.id} could not be found.") from None
    request = boot_request(instance, BootInputs(
        image=image, key_data=await _key_data(deps, instance), files=body.files))
    await _cast(deps, ctx, instance, task, RebuildInstance(
        request=request, node=NodeName(instance.node or ""),
        stopped=instance.vm_state == VmState.STOPPED))
    return RebuildResult(instance=instance, admin_pass=body.admin_pass or generate_password())


# --- lock and unlock --------------------------------------------------------------------

async def lock(deps: ApiDeps, ctx: RequestContext, server_id: str, args: Any) -> None:
    """Lock the server against actions (and delete) by non-admins. The owner locking an
    already locked server changes nothing; an admin's lock is the admin's to lift."""
    reason = parse_lock(args)
    instance = await get_server(deps, ctx, server_id)
    is_owner = instance.project_id == ctx.project_id
    if instance.locked and is_owner:
        return
    changes: InstanceChanges = {"locked": True, "locked_by": "owner" if is_owner else "admin"}
    if reason is not None:
        changes["locked_reason"] = reason
    await _lock_write(deps, ctx, instance, "lock", changes)


async def unlock(deps: ApiDeps, ctx: RequestContext, server_id: str, args: Any) -> None:
    """Unlock the server. A lock an admin set on another project's server may only be
    lifted by an admin (Nova's ``unlock:unlock_override``)."""
    no_arguments("unlock", args)
    instance = await get_server(deps, ctx, server_id)
    expected_by = "owner" if instance.project_id == ctx.project_id else "admin"
    if instance.locked_by not in (None, expected_by) and not ctx.is_admin:
        raise Forbidden("Policy doesn't allow os_compute_api:os-lock-server:unlock:"
                        "unlock_override to be performed.")
    await _lock_write(deps, ctx, instance, "unlock",
                      {"locked": False, "locked_by": None, "locked_reason": None})


async def _lock_write(deps: ApiDeps, ctx: RequestContext, instance: Instance, name: str,
                      changes: InstanceChanges) -> None:
    """Record the action and its ``api_<name>`` event around the write (as Nova's
    ``wrap_instance_event(prefix='api')``); the lock applies in any task state."""
    iid = instance.id
    await deps.db.actions.start_action(instance_id=iid, action=name,
                                       request_id=ctx.request_id, user_id=ctx.user_id,
                                       project_id=ctx.project_id)
    event = f"api_{name}"
    await deps.db.actions.start_event(instance_id=iid, request_id=ctx.request_id,
                                      event=event)
    try:
        await deps.db.instances.update(iid, changes, expected_task_state=None)
    except NotFound:
        await deps.db.actions.finish_event(instance_id=iid, request_id=ctx.request_id,
                                           event=event, result=EventResult.ERROR,
                                           traceback="the instance was deleted")
        raise NotFound(f"Instance {iid} could not be found.") from None
    await deps.db.actions.finish_event(instance_id=iid, request_id=ctx.request_id,
                                       event=event, result=EventResult.SUCCESS)
    logger.info("instance.%s: %s", name, iid)


async def delete(deps: ApiDeps, ctx: RequestContext, server_id: str, *,
                 force: bool = False) -> None:
    """``DELETE`` and ``forceDelete``: a locked server may be deleted by admins only (409
    otherwise, as in Nova). With ``reclaim_instance_interval`` set (and not ``force``), a
    server with a guest is soft-deleted instead: powered off and kept, restorable;
    otherwise it is deleted for good (``service.delete_server``)."""
    instance = await get_server(deps, ctx, server_id)
    if instance.locked and not ctx.is_admin:
        raise InvalidState(f"Instance {instance.id} is locked")
    if (not force and deps.settings.reclaim_instance_interval > 0
            and await soft_delete(deps, ctx, instance)):
        return
    await delete_server(deps, ctx, instance)


async def _key_data(deps: ApiDeps, instance: Instance) -> str | None:
    """The public key of the instance's key pair, for the rebuilt config drive (None
    when it had none, or its owner deleted it since, as Nova then rebuilds without)."""
    if not instance.key_name:
        return None
    try:
        return (await deps.db.key_pairs.get(instance.user_id, instance.key_name)).public_key
    except NotFound:
        return None

