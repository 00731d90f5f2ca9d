"""Typed identifiers. They are plain strings at run time; the types keep them apart."""

import uuid
from typing import NewType

InstanceId = NewType("InstanceId", str)
ProjectId = NewType("ProjectId", str)
UserId = NewType("UserId", str)
RequestId = NewType("RequestId", str)
ImageId = NewType("ImageId", str)
FlavorId = NewType("FlavorId", str)
HostName = NewType("HostName", str)
NodeName = NewType("NodeName", str)
ReservationId = NewType("ReservationId", str)
GroupId = NewType("GroupId", str)

__all__ = ["FlavorId", "GroupId", "HostName", "ImageId", "InstanceId", "NodeName", "ProjectId",
           "RequestId", "ReservationId", "UserId", "new_request_id", "new_uuid"]


def new_uuid() -> str:
    """A fresh random UUID in its canonical string form."""
    return str(uuid.uuid4())


def new_request_id() -> RequestId:
    """A request id in the form OpenStack uses (``req-<uuid>``)."""
    return RequestId(f"req-{uuid.uuid4()}")
