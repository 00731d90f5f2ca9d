"""Conversions between table rows and domain objects, in both directions.

Pure functions: no I/O, so each repository method reads as "query, then convert".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from strato.db.ports import NodeRecord, ServiceRecord
from strato.domain.actions import ActionEvent, EventResult, InstanceAction
from strato.domain.ids import (
    FlavorId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    RequestId,
    UserId,
)
from strato.domain.instances import Fault, Instance, InstanceChanges, PowerState, TaskState, VmState
from strato.domain.resources import Flavor, NodeCapacity, Resources

Values = dict[str, Any]

# ---- flavors ---------------------------------------------------------------------------


def flavor_to_json(flavor: Flavor) -> Values:
    """The flavor snapshot an instance row keeps (every field, extra specs included)."""
    return {"id": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus,
            "memory_mb": flavor.memory_mb, "root_gb": flavor.root_gb,
            "ephemeral_gb": flavor.ephemeral_gb, "swap_mb": flavor.swap_mb,
            "is_public": flavor.is_public, "disabled": flavor.disabled,
            "rxtx_factor": flavor.rxtx_factor, "description": flavor.description,
            "extra_specs": dict(flavor.extra_specs)}


def flavor_from_json(data: Mapping[str, Any]) -> Flavor:
    """The inverse of :func:`flavor_to_json`."""
    fields = dict(data)
    return Flavor(**{**fields, "id": FlavorId(fields["id"]),
                     "extra_specs": dict(fields.get("extra_specs") or {})})


def flavor_values(flavor: Flavor, now: datetime) -> Values:
    """The ``flavors`` row for a flavor (its extra specs go to their own table)."""
    return {"flavorid": flavor.id, "name": flavor.name, "vcpus": flavor.vcpus,
            "memory_mb": flavor.memory_mb, "root_gb": flavor.root_gb,
            "ephemeral_gb": flavor.ephemeral_gb, "swap_mb": flavor.swap_mb,
            "is_public": flavor.is_public, "disabled": flavor.disabled,
            "rxtx_factor": flavor.rxtx_factor, "description": flavor.description,
            "created_at": now}


def flavor_from_row(row: Any, extra_specs: Mapping[str, str]) -> Flavor:
    """A flavor from its ``flavors`` row and its extra specs."""
    return Flavor(id=FlavorId(row.flavorid), name=row.name, vcpus=row.vcpus,
                  memory_mb=row.memory_mb, root_gb=row.root_gb,
                  ephemeral_gb=row.ephemeral_gb, swap_mb=row.swap_mb,
                  is_public=row.is_public, disabled=row.disabled,
                  rxtx_factor=row.rxtx_factor, description=row.description,
                  extra_specs=dict(extra_specs))


# ---- instances -------------------------------------------------------------------------


def fault_to_json(fault: Fault | None, now: datetime) -> Values | None:
    """The ``fault`` column's value; a fault without a time is stamped ``now``."""
    if fault is None:
        return None
    created = fault.created_at or now
    return {"code": fault.code, "message": fault.message, "details": fault.details,
            "created": created.isoformat()}


def fault_from_json(data: Mapping[str, Any] | None) -> Fault | None:
    """The inverse of :func:`fault_to_json`."""
    if data is None:
        return None
    created = data.get("created")
    return Fault(code=int(data["code"]), message=data["message"],
                 details=data.get("details") or "",
                 created_at=datetime.fromisoformat(created) if created else None)


def instance_values(instance: Instance, now: datetime) -> Values:
    """The ``instances`` row for a new instance (created now unless it says otherwise)."""
    return {
        "uuid": instance.id, "display_name": instance.display_name,
        "project_id": instance.project_id, "user_id": instance.user_id,
        "image_ref": instance.image_ref, "flavorid": instance.flavor.id,
        "flavor": flavor_to_json(instance.flavor), "vm_state": instance.vm_state.value,
        "task_state": _value(instance.task_state), "power_state": int(instance.power_state),
        "host": instance.host, "node": instance.node,
        "availability_zone": instance.availability_zone, "key_name": instance.key_name,
        "metadata": dict(instance.metadata), "user_data": instance.user_data,
        "config_drive": instance.config_drive, "reservation_id": instance.reservation_id,
        "launch_index": instance.launch_index,
        "created_at": instance.created_at or now, "updated_at": instance.updated_at,
        "launched_at": instance.launched_at, "terminated_at": instance.terminated_at,
        "deleted": instance.deleted, "deleted_at": now if instance.deleted else None,
        "fault": fault_to_json(instance.fault, now),
        "locked": instance.locked, "locked_by": instance.locked_by,
        "locked_reason": instance.locked_reason,
        "access_ip_v4": instance.access_ip_v4, "access_ip_v6": instance.access_ip_v6,
    }


def instance_from_row(row: Any) -> Instance:
    """An instance from its ``instances`` row."""
    return Instance(
        id=InstanceId(row.uuid), display_name=row.display_name,
        project_id=ProjectId(row.project_id), user_id=UserId(row.user_id),
        image_ref=ImageId(row.image_ref), flavor=flavor_from_json(row.flavor),
        vm_state=VmState(row.vm_state),
        task_state=TaskState(row.task_state) if row.task_state is not None else None,
        power_state=PowerState(row.power_state),
        host=HostName(row.host) if row.host is not None else None,
        node=NodeName(row.node) if row.node is not None else None,
        availability_zone=row.availability_zone, key_name=row.key_name,
        metadata=dict(row.metadata), user_data=row.user_data,
        config_drive=row.config_drive, reservation_id=row.reservation_id,
        launch_index=row.launch_index, created_at=row.created_at,
        updated_at=row.updated_at, launched_at=row.launched_at,
        terminated_at=row.terminated_at, deleted=row.deleted,
        fault=fault_from_json(row.fault), locked=row.locked, locked_by=row.locked_by,
        locked_reason=row.locked_reason, access_ip_v4=row.access_ip_v4,
        access_ip_v6=row.access_ip_v6,
    )


def change_values(changes: InstanceChanges, now: datetime) -> Values:
    """The columns an :class:`InstanceChanges` sets, plus ``updated_at``; keys that are
    absent stay absent (left alone), keys present with ``None`` clear the column."""
    values: Values = {"updated_at": now}
    for key, value in changes.items():
        if key == "fault":
            values[key] = fault_to_json(value, now)  # type: ignore[arg-type]
        elif key == "power_state":
            values[key] = int(value)  # type: ignore[call-overload]
        else:
            values[key] = _value(value)
    return values


def _value(value: Any) -> Any:
    # Enums are stored by value; plain strings, datetimes and None pass through.
    return value.value if isinstance(value, (VmState, TaskState)) else value


# ---- nodes and services ----------------------------------------------------------------


def capacity_values(cap: NodeCapacity) -> Values:
    """The columns a node's report sets (never its usage)."""
    return {"host": cap.host, "node": cap.node, "vcpus": cap.total.vcpus,
            "memory_mb": cap.total.memory_mb, "local_gb": cap.total.disk_gb,
            "cpu_allocation_ratio": cap.cpu_allocation_ratio,
            "ram_allocation_ratio": cap.ram_allocation_ratio,
            "disk_allocation_ratio": cap.disk_allocation_ratio,
            "reserved_vcpus": cap.reserved.vcpus,
            "reserved_memory_mb": cap.reserved.memory_mb,
            "reserved_disk_gb": cap.reserved.disk_gb,
            "hypervisor_type": cap.hypervisor_type,
            "hypervisor_version": cap.hypervisor_version, "cpu_info": cap.cpu_info,
            "supported_instances": [list(t) for t in cap.supported_instances]}


def capacity_from_row(row: Any) -> NodeCapacity:
    """A node's capacity from its ``compute_nodes`` row."""
    return NodeCapacity(
        host=HostName(row.host), node=NodeName(row.node),
        total=Resources(vcpus=row.vcpus, memory_mb=row.memory_mb, disk_gb=row.local_gb),
        cpu_allocation_ratio=row.cpu_allocation_ratio,
        ram_allocation_ratio=row.ram_allocation_ratio,
        disk_allocation_ratio=row.disk_allocation_ratio,
        reserved=Resources(vcpus=row.reserved_vcpus, memory_mb=row.reserved_memory_mb,
                           disk_gb=row.reserved_disk_gb),
        hypervisor_type=row.hypervisor_type, hypervisor_version=row.hypervisor_version,
        cpu_info=row.cpu_info or "",
        supported_instances=tuple((str(a), str(h), str(m))
                                  for a, h, m in (row.supported_instances or ())))


def used_from_row(row: Any) -> Resources:
    """A node's current usage from its ``compute_nodes`` row."""
    return Resources(vcpus=row.vcpus_used, memory_mb=row.memory_mb_used,
                     disk_gb=row.local_gb_used)


def is_up(last_seen: datetime | None, now: datetime, down_time: float) -> bool:
    """Whether a service that last reported at ``last_seen`` counts as alive. Like Nova,
    the distance is absolute, so a clock a little ahead does not mark a service down."""
    return last_seen is not None and abs((now - last_seen).total_seconds()) <= down_time


def service_from_row(row: Any, now: datetime, down_time: float) -> ServiceRecord:
    """A service record, its liveness judged at ``now``."""
    return ServiceRecord(id=row.id, binary=row.binary, host=HostName(row.host),
                         topic=row.topic, last_seen=row.last_seen, disabled=row.disabled,
                         disabled_reason=row.disabled_reason,
                         is_up=is_up(row.last_seen, now, down_time))


# ---- actions ---------------------------------------------------------------------------


def event_from_row(row: Any) -> ActionEvent:
    """An action event from its ``instance_actions_events`` row."""
    return ActionEvent(event=row.event, start_time=row.start_time,
                       finish_time=row.finish_time,
                       result=EventResult(row.result) if row.result is not None else None,
                       traceback=row.traceback, host=row.host)


def action_from_row(row: Any, events: Sequence[ActionEvent]) -> InstanceAction:
    """An action from its ``instance_actions`` row and its events (in start order)."""
    return InstanceAction(action=row.action, instance_id=InstanceId(row.instance_uuid),
                          request_id=RequestId(row.request_id), user_id=UserId(row.user_id),
                          project_id=ProjectId(row.project_id), start_time=row.start_time,
                          message=row.message, events=tuple(events))


def node_record(row: Any) -> NodeRecord:
    """A ``compute_nodes`` row as the scheduler's host-state cache keeps it."""
    return NodeRecord(capacity=capacity_from_row(row), used=used_from_row(row),
                      instances=row.running_vms, generation=row.generation,
                      failed_builds=row.failed_builds)
