"""The database port: the repositories services use, as Protocols (no SQLAlchemy here).

``strato.db.sql`` implements them on SQLAlchemy 2 asyncio for SQLite and PostgreSQL.
Every method is one transaction. Domain errors only: ``NotFound`` for a missing row,
``InvalidState`` when a compare-and-swap finds another state, ``Conflict`` for a
duplicate.
"""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from strato.domain.actions import EventResult, InstanceAction
from strato.domain.identity import Project, User
from strato.domain.ids import FlavorId, HostName, ImageId, InstanceId, ProjectId, RequestId, UserId
from strato.domain.images import Image, ImageData, ImageMember, ImageStatus, MemberStatus
from strato.domain.instances import Instance, InstanceChanges, TaskState, VmState
from strato.domain.quotas import Usage
from strato.domain.requests import Destination
from strato.domain.resources import Allocation, Flavor, NodeCapacity, NodeUsage, Resources

__all__ = ["ActionRepo", "Database", "FlavorRepo", "IdentityRepo", "IMAGE_SORT_KEYS",
           "ImageQuery", "ImageRepo", "ImageSort", "InstanceQuery", "InstanceRepo", "NodeRepo",
           "QuotaRepo", "ServiceRecord", "ServiceRepo", "ANY_TASK_STATE", "AllocationHealing",
           "HealedAllocation", "holds_resources"]

# Pass as ``expected_task_state`` to skip the compare-and-swap check.
ANY_TASK_STATE: tuple[TaskState | None, ...] | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class InstanceQuery:
    """Filters and paging for listing instances; ``None`` means "no filter"."""

    project_id: ProjectId | None = None
    name: str | None = None              # a regular expression, matched with search()
    vm_states: tuple[VmState, ...] | None = None
    changes_since: datetime | None = None
    host: HostName | None = None
    reservation_id: str | None = None
    include_deleted: bool = False        # changes-since also implies deleted ones
    limit: int | None = None
    marker: InstanceId | None = None     # start after this instance (NotFound if unknown)


# Keys images may be sorted by (Glance's list).
IMAGE_SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id",
                   "created_at", "updated_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageSort:
    """One sort key of an image list; ``key`` is one of :data:`IMAGE_SORT_KEYS`."""

    key: str
    ascending: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageQuery:
    """What an image list shows, to whom, in which order; ``None`` means "no filter".

    ``viewer`` is the caller's project, or ``None`` for an admin (who sees every image).
    ``visibility`` ``None`` is the default list: the viewer's own images, public ones
    and shared ones it is a member of with ``member_status`` (``None``: any status);
    ``"all"`` adds community images. ``tags`` must all be present. Sorting always ends
    with ``created_at`` and ``id`` (descending), so pages never overlap.
    """

    viewer: ProjectId | None = None
    id: ImageId | None = None
    visibility: str | None = None
    member_status: MemberStatus | None = MemberStatus.ACCEPTED
    name: str | None = None
    status: str | None = None
    owner: ProjectId | None = None
    disk_format: str | None = None
    container_format: str | None = None
    tags: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()   # extra properties that must match
    protected: bool | None = None
    os_hidden: bool | None = False
    size_min: int | None = None
    size_max: int | None = None
    sort: tuple[ImageSort, ...] = ()
    limit: int | None = None
    marker: ImageId | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ServiceRecord:
    id: int
    binary: str
    host: HostName
    topic: str
    last_seen: datetime | None
    disabled: bool
    disabled_reason: str | None
    is_up: bool


class InstanceRepo(Protocol):
    async def create_many(self, instances: Sequence[Instance], *, request_id: RequestId) -> None:
        """Insert the instances and, with them, a "create" action each; all or nothing."""
        ...

    async def create_within_quota(self, build: Callable[[int], Sequence[Instance]], *,
                                  project_id: ProjectId, flavor: Flavor, min_count: int,
                                  max_count: int, defaults: Mapping[str, int],
                                  request_id: RequestId) -> builtins.list[Instance]:
        """Create as many instances of ``flavor`` as the project's quota allows, from
        ``max_count`` down to ``min_count``: count the project's usage, pick the count,
        insert ``build(count)`` (instances of ``project_id``) with their "create"
        actions, all in one transaction that no other quota-checked write of the project
        interleaves with. ``OverQuota`` (nothing written) when not even ``min_count``
        fit. ``defaults``: the limits that apply where neither the project nor the
        default quota class sets one."""
        ...

    async def get(self, instance_id: InstanceId, *, project_id: ProjectId | None = None,
                  include_deleted: bool = False) -> Instance:
        """One instance; ``NotFound`` if missing, soft-deleted (unless asked for) or in
        another project than ``project_id`` (when given)."""
        ...

    async def list(self, query: InstanceQuery) -> list[Instance]:
        """Instances newest first (created_at desc, id desc), after ``marker``."""
        ...

    async def update(self, instance_id: InstanceId, changes: InstanceChanges, *,
                     expected_task_state: tuple[TaskState | None, ...] | None) -> Instance:
        """Write ``changes`` only if the current task state is one of
        ``expected_task_state`` (skip the check with ``None``), in one conditional UPDATE.
        ``InvalidState`` names the actual task state when the check fails; ``NotFound``
        if the instance is gone (soft-deleted)."""
        ...

    async def soft_delete(self, instance_id: InstanceId) -> Instance:
        """Mark deleted (vm_state deleted, task_state None, terminated_at now, deleted
        flag) and free its allocations in the same transaction. Idempotent."""
        ...


class FlavorRepo(Protocol):
    async def list(self, *, include_private: bool = False, min_ram: int = 0, min_disk: int = 0,
                   limit: int | None = None, marker: FlavorId | None = None) -> list[Flavor]:
        """Flavors ordered by flavor id."""
        ...

    async def get(self, flavor_id: FlavorId) -> Flavor: ...

    async def create(self, flavor: Flavor) -> Flavor:
        """``Conflict`` if the id or the name exists."""
        ...

    async def delete(self, flavor_id: FlavorId) -> None: ...


class ImageRepo(Protocol):
    async def create(self, image: Image) -> Image:
        """Insert the image with its tags; ``Conflict`` if its id exists."""
        ...

    async def get(self, image_id: ImageId) -> Image:
        """One image with its tags; ``NotFound`` if unknown."""
        ...

    async def list(self, query: ImageQuery) -> list[Image]:
        """The images ``query`` selects, in its order, after its marker (``NotFound``
        for a marker the viewer cannot see)."""
        ...

    async def update(self, image: Image, *, expected: ImageStatus) -> Image:
        """Write the image's metadata (name, formats, visibility, protection, minimums,
        hidden flag, owner, properties, tags) if its status is still ``expected``;
        ``InvalidState`` otherwise, ``NotFound`` if it is gone."""
        ...

    async def set_status(self, image_id: ImageId, status: ImageStatus, *,
                         expected: tuple[ImageStatus, ...] | None = None,
                         size: int | None = None, checksum: str | None = None) -> Image:
        """Move the image's status (compare-and-swap on ``expected``)."""
        ...

    async def activate(self, image_id: ImageId, data: ImageData) -> Image:
        """``saving -> active``, recording what the upload measured; ``InvalidState``
        or ``NotFound`` if the image changed or went away meanwhile."""
        ...

    async def add_tag(self, image_id: ImageId, tag: str, *, max_tags: int) -> None:
        """Tag the image (idempotent); ``OverQuota`` past ``max_tags`` tags."""
        ...

    async def remove_tag(self, image_id: ImageId, tag: str) -> None:
        """``NotFound`` if the image does not have the tag."""
        ...

    async def delete(self, image_id: ImageId) -> None:
        """Remove the image with its tags and members; ``NotFound`` if unknown."""
        ...

    async def add_member(self, member: ImageMember) -> ImageMember:
        """``Conflict`` if the project already is a member."""
        ...

    async def get_member(self, image_id: ImageId, member_id: ProjectId) -> ImageMember:
        """``NotFound`` if the project is not a member."""
        ...

    async def list_members(self, image_id: ImageId) -> builtins.list[ImageMember]:
        """The image's members, oldest first."""
        ...

    async def set_member_status(self, image_id: ImageId, member_id: ProjectId,
                                status: MemberStatus) -> ImageMember: ...

    async def remove_member(self, image_id: ImageId, member_id: ProjectId) -> None: ...


def holds_resources(instance: Instance) -> bool:
    """Whether the instance should hold an allocation on its host: every instance that is
    not deleted, except a failed build (ERROR and never launched: the build gave its
    allocation back). The compute's resource audit and :meth:`NodeRepo.heal_host` both
    count by this rule."""
    if instance.deleted or instance.vm_state is VmState.DELETED:
        return False
    return not (instance.vm_state is VmState.ERROR and instance.launched_at is None)


@dataclass(frozen=True, slots=True, kw_only=True)
class HealedAllocation:
    """One allocation :meth:`NodeRepo.heal_host` removed or created, and why."""

    allocation: Allocation
    reason: str


@dataclass(frozen=True, slots=True, kw_only=True)
class AllocationHealing:
    """What :meth:`NodeRepo.heal_host` changed; ``skipped`` says what looked wrong but was
    left alone (an allocation of an unknown instance, an instance on no known node)."""

    removed: tuple[HealedAllocation, ...] = ()
    created: tuple[HealedAllocation, ...] = ()
    skipped: tuple[str, ...] = ()


class NodeRepo(Protocol):
    async def report(self, capacities: Sequence[NodeCapacity]) -> None:
        """Insert or update the nodes' totals and ratios (usage is left alone)."""
        ...

    async def usages(self) -> list[NodeUsage]:
        """Every node with its usage and its compute service's state (up, disabled)."""
        ...

    async def claim(self, instance_id: InstanceId, dest: Destination, need: Resources) -> bool:
        """Atomically allocate ``need`` on ``dest`` for the instance, moving any allocation
        the instance already holds. False (and no change) when it no longer fits."""
        ...

    async def release(self, instance_id: InstanceId) -> None:
        """Free every allocation of the instance; idempotent."""
        ...

    async def allocations(self, instance_id: InstanceId) -> list[Allocation]: ...

    async def heal_host(self, host: HostName) -> AllocationHealing:
        """Make the allocations on ``host``'s nodes match the instances on it, in one
        transaction. Removed: those of deleted instances and, when no task is in
        progress, of instances on another host (or none) or that hold nothing
        (:func:`holds_resources`). Created: one on its node for every instance on the
        host that holds resources, has no task in progress and no allocation here, with
        no limit check (it runs there already). An allocation of an instance being
        scheduled, or of an instance with no record, is left alone."""
        ...


class ServiceRepo(Protocol):
    async def heartbeat(self, *, binary: str, host: HostName, topic: str) -> None:
        """Record that the service is alive now (creates it on first call)."""
        ...

    async def list(self, *, binary: str | None = None) -> list[ServiceRecord]: ...

    async def set_disabled(self, service_id: int, disabled: bool,
                           reason: str | None = None) -> ServiceRecord: ...


class ActionRepo(Protocol):
    async def start_action(self, *, instance_id: InstanceId, action: str,
                           request_id: RequestId, user_id: UserId,
                           project_id: ProjectId) -> None: ...

    async def start_event(self, *, instance_id: InstanceId, request_id: RequestId,
                          event: str, host: HostName | None = None) -> None: ...

    async def finish_event(self, *, instance_id: InstanceId, request_id: RequestId,
                           event: str, result: EventResult,
                           traceback: str | None = None) -> None:
        """Close the event (and on error mark the action's message ``Error``)."""
        ...

    async def list(self, instance_id: InstanceId) -> list[InstanceAction]:
        """Actions newest first, each with its events."""
        ...

    async def get(self, instance_id: InstanceId, request_id: RequestId) -> InstanceAction: ...


class QuotaRepo(Protocol):
    """Quota limits (``-1``: unlimited). ``defaults`` is always the deployment's
    defaults, which the default quota class and then the project's values override."""

    async def limits(self, project_id: ProjectId, *,
                     defaults: Mapping[str, int]) -> dict[str, int]:
        """The project's effective limit of every resource."""
        ...

    async def class_limits(self, class_name: str, *,
                           defaults: Mapping[str, int]) -> dict[str, int]:
        """The quota class's limits (its values over ``defaults``)."""
        ...

    async def usage(self, project_id: ProjectId) -> Usage:
        """What the project's non-deleted instances use, counted now."""
        ...

    async def set_limits(self, project_id: ProjectId, limits: Mapping[str, int], *,
                         defaults: Mapping[str, int], force: bool) -> dict[str, int]:
        """Set the project's values; unless ``force``, ``Invalid`` if a counted
        resource's new limit is below its usage. Returns the effective limits."""
        ...

    async def set_class_limits(self, class_name: str, limits: Mapping[str, int], *,
                               defaults: Mapping[str, int]) -> dict[str, int]:
        """Set the quota class's values; returns the class's limits."""
        ...

    async def reset(self, project_id: ProjectId) -> None:
        """Drop the project's own values (back to the defaults); idempotent."""
        ...


class IdentityRepo(Protocol):
    async def project_by_name(self, name: str) -> Project: ...

    async def user_by_name(self, name: str) -> User: ...

    async def ensure_project(self, name: str, description: str = "") -> Project:
        """The project called ``name``, created when missing (safe to race)."""
        ...

    async def ensure_user(self, name: str, default_project_id: ProjectId | None) -> User:
        """The user called ``name``, created when missing (safe to race)."""
        ...


class Database(Protocol):
    identity: IdentityRepo
    instances: InstanceRepo
    flavors: FlavorRepo
    images: ImageRepo
    nodes: NodeRepo
    services: ServiceRepo
    actions: ActionRepo
    quotas: QuotaRepo

    async def close(self) -> None: ...
