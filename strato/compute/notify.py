"""Versioned notifications: what an external consumer (billing, monitoring, a dashboard)
hears of an instance's life, on the bus's fan-out topics.

The shape is Nova's versioned notification, simplified: an envelope with ``event_type``
(``instance.create.start`` ...), ``publisher_id`` (``compute:<host>``), ``priority``,
``timestamp`` and ``payload``, and a payload that is a serialized versioned object
(``nova_object.name`` ``InstanceActionPayload``, ``nova_object.version``,
``nova_object.data``). INFO notifications go to ``notifications.info``, ERROR ones (a
failed action, with its fault) to ``notifications.error``.

A consumer subscribes to those topics with a handler for a message kind named
``Notification`` whose fields are those of :class:`Notification`; it needs nothing else
of strato. Sending is best effort: a notification the bus cannot take is logged and the
instance's work goes on.

Events: ``instance.create.start`` / ``.end`` / ``.error`` (an error for every failed
attempt, rescheduled or not, as Nova sends them) and ``instance.delete.start`` / ``.end``.
:meth:`Notifier.instance_action` sends the same shape for any other action (``reboot``,
``power_off`` ...).
"""

from __future__ import annotations

import enum
import logging
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from strato.domain.context import RequestContext
from strato.domain.errors import StratoError
from strato.domain.ids import HostName, NodeName, new_uuid
from strato.domain.instances import Fault, Instance, PowerState, TaskState, VmState
from strato.domain.requests import BootRequest
from strato.domain.resources import Flavor
from strato.rpc.bus import Bus

__all__ = ["ERROR_TOPIC", "INFO_TOPIC", "PAYLOAD_NAME", "PAYLOAD_VERSION", "Notification",
           "Notifier", "Phase", "instance_payload"]

logger = logging.getLogger(__name__)

INFO_TOPIC = "notifications.info"
ERROR_TOPIC = "notifications.error"
PAYLOAD_NAME = "InstanceActionPayload"
PAYLOAD_VERSION = "1.0"

# Nova's power_state names in notifications (fields.InstancePowerState).
_POWER_NAMES = {PowerState.NOSTATE: "pending", PowerState.RUNNING: "running",
                PowerState.PAUSED: "paused", PowerState.SHUTDOWN: "shutdown",
                PowerState.CRASHED: "crashed", PowerState.SUSPENDED: "suspended"}


class Phase(enum.StrEnum):
    START = "start"
    END = "end"
    ERROR = "error"


@dataclass(frozen=True, slots=True, kw_only=True)
class Notification:
    """One notification as it travels (message kind ``Notification``)."""

    event_type: str
    publisher_id: str
    priority: str
    timestamp: str
    payload: dict[str, Any]
    message_id: str = field(default_factory=new_uuid)


def _flavor(flavor: Flavor) -> dict[str, Any]:
    return {"flavorid": flavor.id, "name": flavor.name, "memory_mb": flavor.memory_mb,
            "vcpus": flavor.vcpus, "root_gb": flavor.root_gb,
            "ephemeral_gb": flavor.ephemeral_gb, "swap": flavor.swap_mb,
            "is_public": flavor.is_public, "extra_specs": dict(flavor.extra_specs)}


def _fault(fault: Fault) -> dict[str, Any]:
    return {"code": fault.code, "message": fault.message, "details": fault.details}


def _time(value: datetime | None) -> str | None:
    return value.astimezone(UTC).isoformat() if value is not None else None


def instance_payload(instance: Instance, *, request_id: str,
                     fault: Fault | None = None) -> dict[str, Any]:
    """The versioned ``InstanceActionPayload`` of ``instance`` (``fault``: what failed)."""
    data: dict[str, Any] = {
        "uuid": instance.id, "display_name": instance.display_name,
        "tenant_id": instance.project_id, "user_id": instance.user_id,
        "host": instance.host, "node": instance.node,
        "state": instance.vm_state.value,
        "task_state": instance.task_state.value if instance.task_state else None,
        "power_state": _POWER_NAMES.get(instance.power_state, "pending"),
        "flavor": _flavor(instance.flavor), "image_uuid": instance.image_ref,
        "created_at": _time(instance.created_at), "launched_at": _time(instance.launched_at),
        "terminated_at": _time(instance.terminated_at),
        "fault": _fault(fault) if fault is not None else None,
        "request_id": request_id,
    }
    return {"nova_object.name": PAYLOAD_NAME, "nova_object.namespace": "nova",
            "nova_object.version": PAYLOAD_VERSION, "nova_object.data": data}


def _from_request(req: BootRequest, *, host: HostName, node: NodeName, vm_state: VmState,
                  task_state: TaskState | None) -> Instance:
    """The instance as a build on this host knows it, from its request alone."""
    return Instance(id=req.instance_id, display_name=req.name, project_id=req.project_id,
                    user_id=req.user_id, image_ref=req.image.id, flavor=req.flavor,
                    vm_state=vm_state, task_state=task_state, host=host, node=node,
                    reservation_id=req.reservation_id, launch_index=req.launch_index)


@dataclass(frozen=True, slots=True)
class Notifier:
    """Sends one host's instance notifications on ``bus``."""

    bus: Bus
    host: HostName

    @property
    def publisher_id(self) -> str:
        return f"compute:{self.host}"

    async def instance_action(self, ctx: RequestContext, action: str, phase: Phase,
                              instance: Instance, *, fault: Fault | None = None) -> None:
        """``instance.<action>.<phase>`` for ``instance``; an ``error`` phase goes to the
        error topic with ``fault``."""
        error = phase is Phase.ERROR
        note = Notification(event_type=f"instance.{action}.{phase}",
                            publisher_id=self.publisher_id,
                            priority="ERROR" if error else "INFO",
                            timestamp=datetime.now(UTC).isoformat(),
                            payload=instance_payload(instance, request_id=ctx.request_id,
                                                     fault=fault))
        try:
            await self.bus.publish(ERROR_TOPIC if error else INFO_TOPIC, note, ctx=ctx)
        except StratoError as exc:
            logger.warning("notification %s not sent: %s", note.event_type, exc)

    async def create_start(self, ctx: RequestContext, req: BootRequest,
                           node: NodeName) -> None:
        instance = _from_request(req, host=self.host, node=node, vm_state=VmState.BUILDING,
                                 task_state=TaskState.SCHEDULING)
        await self.instance_action(ctx, "create", Phase.START, instance)

    async def create_end(self, ctx: RequestContext, instance: Instance) -> None:
        await self.instance_action(ctx, "create", Phase.END, instance)

    async def create_error(self, ctx: RequestContext, req: BootRequest, node: NodeName,
                           fault: Fault, *, vm_state: VmState = VmState.ERROR,
                           task_state: TaskState | None = None) -> None:
        """A failed build on this host: ERROR, or (rescheduled) building again."""
        instance = _from_request(req, host=self.host, node=node, vm_state=vm_state,
                                 task_state=task_state)
        await self.instance_action(ctx, "create", Phase.ERROR, instance, fault=fault)

    async def delete_start(self, ctx: RequestContext, instance: Instance) -> None:
        await self.instance_action(ctx, "delete", Phase.START, instance)

    async def delete_end(self, ctx: RequestContext, instance: Instance) -> None:
        await self.instance_action(ctx, "delete", Phase.END, instance)
