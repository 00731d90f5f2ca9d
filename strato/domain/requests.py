"""Typed requests that cross services: built once at the edge, passed down unchanged."""

from __future__ import annotations

from dataclasses import dataclass, field

from strato.domain.ids import (
    GroupId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    ReservationId,
    UserId,
)
from strato.domain.images import Image
from strato.domain.resources import Flavor

__all__ = ["BootRequest", "Destination", "InjectedFile", "RequestedNetwork", "RetryInfo",
           "SchedulerHints", "Selection"]


@dataclass(frozen=True, slots=True, kw_only=True)
class SchedulerHints:
    """What the user asked of placement: a zone (``az``, ``az:host``, ``az:host:node``;
    forcing a host or node is admin-only and skips the policy filters, as in Nova) and
    a server group (``scheduler_hints: {group: <uuid>}``)."""

    availability_zone: str | None = None
    force_host: HostName | None = None
    force_node: NodeName | None = None
    group: GroupId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Destination:
    """One place an instance can go."""

    host: HostName
    node: NodeName
    # The host's availability zone when it was chosen (the instance's zone from then on).
    availability_zone: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class Selection:
    """The scheduler's answer for one instance: the claimed destination, then alternates
    (same resources, not claimed) that a reschedule may try in order."""

    instance_id: InstanceId
    chosen: Destination
    alternates: tuple[Destination, ...] = ()


@dataclass(frozen=True, slots=True, kw_only=True)
class RetryInfo:
    """How many times a build was tried and where; a reschedule never revisits a host."""

    attempts: int = 1
    hosts: tuple[HostName, ...] = ()
    last_error: str = ""


@dataclass(frozen=True, slots=True, kw_only=True)
class InjectedFile:
    """A file the user asked to find in the guest (Nova's "personality"); it reaches
    the guest through the config drive. ``contents`` is base64, as the API took it."""

    path: str
    contents: str


@dataclass(frozen=True, slots=True, kw_only=True)
class RequestedNetwork:
    """One NIC of a create request (``networks: [{uuid}|{port}|{fixed_ip}]``): a new port
    on ``network_id`` (at ``fixed_ip`` when given), or the user's existing ``port_id``.
    The API has checked that they exist and are the user's to use."""

    network_id: str | None = None
    port_id: str | None = None
    fixed_ip: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class BootRequest:
    """Everything a host needs to build one instance."""

    instance_id: InstanceId
    project_id: ProjectId
    user_id: UserId
    name: str
    flavor: Flavor
    image: Image
    reservation_id: ReservationId
    launch_index: int = 0
    metadata: dict[str, str] = field(default_factory=dict)
    user_data: str | None = None
    key_name: str | None = None
    # The public key of ``key_name``, read when the request was made (the guest gets it).
    key_data: str | None = None
    config_drive: bool = False
    files: tuple[InjectedFile, ...] = ()
    hints: SchedulerHints = SchedulerHints()
    retry: RetryInfo = RetryInfo()
    # One port per entry, in order (eth0 first); empty: no NIC ("networks": "none").
    networks: tuple[RequestedNetwork, ...] = ()
    # Security group ids the new ports join (the project's ``default`` when empty).
    security_groups: tuple[str, ...] = ()
    # The kernel and ramdisk images of an AMI-style ``image``, which the API checked the
    # user may boot; the compute boots these, never ids read from image properties.
    kernel_id: ImageId | None = None
    ramdisk_id: ImageId | None = None
