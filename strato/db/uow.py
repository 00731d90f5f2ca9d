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

from strato.domain.actions import EventResult, InstanceAction, TimedEvent
from strato.domain.aggregates import Aggregate
from strato.domain.groups import ServerGroup
from strato.domain.identity import (
    Domain,
    DomainId,
    NewPassword,
    Project,
    Role,
    RoleAssignment,
    RoleId,
    User,
)
from strato.domain.ids import (
    FlavorId,
    GroupId,
    HostName,
    ImageId,
    InstanceId,
    NodeName,
    ProjectId,
    RequestId,
    UserId,
)
from strato.domain.images import Image, ImageData, ImageMember, ImageStatus, MemberStatus
from strato.domain.instances import Instance, InstanceChanges, TaskState, VmState
from strato.domain.keypairs import KeyPair
from strato.domain.networks import (
    FixedIp,
    Network,
    Port,
    PortStatus,
    SecurityGroup,
    SecurityGroupRule,
    Subnet,
    Vif,
)
from strato.domain.quotas import Usage
from strato.domain.requests import Destination, RequestedNetwork
from strato.domain.resources import Allocation, Flavor, NodeCapacity, NodeUsage, Resources

__all__ = ["ActionRepo", "AggregateRepo", "ComputeServiceState", "Database", "GroupMembers",
           "NetworkRepo", "NodeChanges", "PlacementRepo", "SecurityGroupRepo",
           "NodeRecord", "ServerGroupRepo", "FlavorRepo", "IdentityRepo", "IMAGE_SORT_KEYS",
           "ImageQuery", "ImageRepo", "ImageSort", "InstanceQuery", "InstanceRepo", "NodeRepo",
           "QuotaRepo", "ServiceRecord", "ServiceRepo", "ANY_TASK_STATE", "AllocationHealing",
           "HealedAllocation", "holds_resources", "KeyPairRepo"]

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
                                  request_id: RequestId,
                                  group: GroupId | None = None) -> builtins.list[Instance]:
        """Create as many instances of ``flavor`` as the project's quota allows, from
        ``max_count`` down to ``min_count``: count the project's usage, pick the count,
        insert ``build(count)`` (instances of ``project_id``) with their "create"
        actions, all in one transaction that no other quota-checked write of the project
        interleaves with. ``OverQuota`` (nothing written) when not even ``min_count``
        fit. ``defaults``: the limits that apply where neither the project nor the
        default quota class sets one. With ``group``, the instances join that server
        group in the same transaction (``NotFound`` if it is gone, ``OverQuota`` past
        its ``server_group_members`` limit)."""
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


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeRecord:
    """One ``compute_nodes`` row: capacity, usage, and the generation every change bumps."""

    capacity: NodeCapacity
    used: Resources
    instances: int
    generation: int
    failed_builds: int = 0


@dataclass(frozen=True, slots=True, kw_only=True)
class ComputeServiceState:
    """The compute service of one host, as placement needs it."""

    host: HostName
    last_seen: datetime | None
    disabled: bool = False
    disabled_reason: str | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class NodeChanges:
    """What :meth:`NodeRepo.changes` read, and when."""

    nodes: tuple[NodeRecord, ...]
    services: tuple[ComputeServiceState, ...]
    read_at: datetime


class NodeRepo(Protocol):
    async def report(self, capacities: Sequence[NodeCapacity]) -> None:
        """Insert or update the nodes' totals and ratios (usage is left alone)."""
        ...

    async def usages(self) -> list[NodeUsage]:
        """Every node with its usage and its compute service's state (up, disabled)."""
        ...

    async def exists(self, *, host: HostName | None = None, node: NodeName | None = None,
                     unzoned: bool = False) -> bool:
        """Whether a compute node matches (on ``host``, called ``node``, on a host in no
        availability zone), without reading every node."""
        ...

    async def claim(self, instance_id: InstanceId, dest: Destination, need: Resources) -> bool:
        """Atomically allocate ``need`` on ``dest`` for the instance, moving any allocation
        the instance already holds. False (and no change) when it no longer fits."""
        ...

    async def claim_node(self, instance_id: InstanceId, dest: Destination,
                         need: Resources) -> NodeRecord | None:
        """:meth:`claim`, answering the claimed node's row after the claim (or None)."""
        ...

    async def changes(self, since: datetime | None) -> NodeChanges:
        """Nodes and compute services changed at or after ``since`` (all when None)."""
        ...

    async def record_build(self, dest: Destination, *, succeeded: bool) -> None:
        """Count a failed build on the node, or reset its count after a success."""
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
                           traceback: str | None = None, host: HostName | None = None,
                           details: str | None = None,
                           alternates: Sequence[HostName] | None = None) -> None:
        """Close the event (and on error mark the action's message ``Error``); ``host``,
        ``details`` and ``alternates`` are recorded when given."""
        ...

    async def record_events(self, *, instance_id: InstanceId, request_id: RequestId,
                            events: Sequence[TimedEvent]) -> None:
        """Add finished events timed elsewhere, in one transaction; ``NotFound``
        without the request's action."""
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
    """Domains, projects, users, password hashes, roles, their assignments on projects,
    and token revocations.

    Lookups raise ``NotFound`` with Keystone's message (``Could not find project: <id>.``);
    creations and renames raise ``Conflict`` when the name is taken; ``ensure_*`` and
    ``assign_role`` are idempotent and safe to race. Every write also moves
    :meth:`revision` on in the same transaction, so anything read here may be cached for
    as long as the revision stays the same, in every process sharing the database."""

    async def revision(self) -> int:
        """The identity data's revision: it changes with every write (one tiny read)."""
        ...

    # ---- lookups

    async def project(self, project_id: ProjectId) -> Project: ...

    async def project_by_name(self, name: str,
                              domain_id: DomainId | None = None) -> Project: ...

    async def user(self, user_id: UserId) -> User: ...

    async def user_by_name(self, name: str, domain_id: DomainId | None = None) -> User: ...

    async def domain(self, domain_id: DomainId) -> Domain: ...

    async def domain_by_name(self, name: str) -> Domain: ...

    async def role(self, role_id: RoleId) -> Role: ...

    async def domains(self, *, name: str | None = None,
                      enabled: bool | None = None) -> builtins.list[Domain]:
        """The domains (by name) matching every filter given."""
        ...

    async def projects(self, *, name: str | None = None, domain_id: DomainId | None = None,
                       enabled: bool | None = None) -> builtins.list[Project]:
        """The projects (by name) matching every filter given."""
        ...

    async def users(self, *, name: str | None = None, domain_id: DomainId | None = None,
                    enabled: bool | None = None) -> builtins.list[User]:
        """The users (by name) matching every filter given."""
        ...

    async def roles(self, *, name: str | None = None) -> builtins.list[Role]:
        """The roles (by name), or the one called ``name``."""
        ...

    # ---- bootstrap (idempotent, safe to race)

    async def ensure_domain(self, domain_id: DomainId, name: str) -> Domain: ...

    async def ensure_project(self, name: str, description: str = "") -> Project:
        """The project called ``name``, created when missing (safe to race)."""
        ...

    async def ensure_user(self, name: str, default_project_id: ProjectId | None) -> User:
        """The user called ``name``, created when missing (safe to race)."""
        ...

    async def ensure_role(self, name: str) -> Role: ...

    async def assign_role(self, user_id: UserId, project_id: ProjectId,
                          role_id: RoleId) -> None:
        """Give the role (nothing happens when the user already holds it)."""
        ...

    # ---- administration

    async def create_domain(self, domain: Domain) -> Domain: ...

    async def create_project(self, project: Project) -> Project: ...

    async def create_user(self, user: User, password: NewPassword) -> User: ...

    async def create_role(self, role: Role) -> Role: ...

    async def update_domain(self, domain: Domain) -> Domain:
        """Store every field of ``domain`` but its id."""
        ...

    async def update_project(self, project: Project) -> Project:
        """Store every field of ``project`` but its id and domain."""
        ...

    async def update_user(self, user: User, password: NewPassword | None = None) -> User:
        """Store every field of ``user`` but its id and domain, and the new password if
        one is given. A new password, or a disabled user, refuses the user's tokens
        issued until now."""
        ...

    async def update_role(self, role: Role) -> Role: ...

    async def delete_domain(self, domain_id: DomainId) -> None:
        """Delete the domain with its projects and users."""
        ...

    async def delete_project(self, project_id: ProjectId) -> None:
        """Delete the project and its role assignments; users whose default project it
        was keep none."""
        ...

    async def delete_user(self, user_id: UserId) -> None: ...

    async def delete_role(self, role_id: RoleId) -> None:
        """Delete the role and every assignment of it."""
        ...

    async def unassign_role(self, user_id: UserId, project_id: ProjectId,
                            role_id: RoleId) -> None:
        """Take the role away; ``NotFound`` when the user does not hold it there."""
        ...

    async def role_assignments(self, *, user_id: UserId | None = None,
                               project_id: ProjectId | None = None,
                               role_id: RoleId | None = None
                               ) -> builtins.list[RoleAssignment]:
        """The assignments matching every filter given, by user, project and role."""
        ...

    # ---- passwords and roles

    async def password_hash(self, user_id: UserId) -> str | None:
        """The user's encoded password hash (``None``: no password login)."""
        ...

    async def set_password_hash(self, user_id: UserId, password_hash: str | None) -> None:
        """Replace the user's password hash; the user's tokens issued until now are
        refused."""
        ...

    async def roles_on(self, user_id: UserId, project_id: ProjectId) -> builtins.list[Role]:
        """The user's roles on the project, by name."""
        ...

    async def projects_of(self, user_id: UserId) -> builtins.list[Project]:
        """The projects the user holds any role on, by name."""
        ...

    # ---- token revocations

    async def revoke_token(self, audit_id: str, expires_at: datetime) -> None:
        """Refuse tokens carrying ``audit_id`` until ``expires_at`` (then forgotten)."""
        ...

    async def token_revoked(self, audit_ids: Sequence[str], *, user_id: UserId,
                            issued_at: datetime) -> bool:
        """Whether a token is refused: one of its audit ids is revoked, or its user's
        tokens issued before ``issued_at`` are."""
        ...


class AggregateRepo(Protocol):
    """Host aggregates (os-aggregates). Every change, hosts and metadata included, sets
    the aggregate's ``updated_at``: the scheduler notices changes by it."""

    async def create(self, name: str, availability_zone: str | None = None) -> Aggregate:
        """``Conflict`` when the name is taken."""
        ...

    async def get(self, aggregate_id: int) -> Aggregate:
        """``NotFound`` for an unknown id."""
        ...

    async def list(self) -> builtins.list[Aggregate]:
        """Every aggregate, by id."""
        ...

    async def update(self, aggregate_id: int, *, name: str | None = None,
                     availability_zone: str | None = None) -> Aggregate:
        """Rename and/or move to a zone (``None`` leaves a field alone). ``Conflict`` when
        the name is taken or a host would end up in two zones."""
        ...

    async def delete(self, aggregate_id: int) -> None:
        """``InvalidState`` while it still has hosts (Nova refuses too)."""
        ...

    async def add_host(self, aggregate_id: int, host: HostName) -> Aggregate:
        """``NotFound`` for an unknown aggregate or a host no compute service runs on,
        ``Conflict`` when the host is a member already or would be in two zones."""
        ...

    async def remove_host(self, aggregate_id: int, host: HostName) -> Aggregate:
        """``NotFound`` when the host is not a member."""
        ...

    async def set_metadata(self, aggregate_id: int,
                           changes: Mapping[str, str | None]) -> Aggregate:
        """Set keys; a ``None`` value deletes the key. ``Conflict`` when a zone change
        would put one of its hosts in two zones."""
        ...

    async def stamp(self) -> str:
        """Changes whenever any aggregate changes (the scheduler's cue to re-read)."""
        ...

    async def host_zones(self) -> dict[HostName, str]:
        """The zone of every host that is in an aggregate with a zone."""
        ...


class ServerGroupRepo(Protocol):
    """Server groups (os-server-groups). Members are added with the instances they hold
    (:meth:`InstanceRepo.create_within_quota`); a deleted instance is no member."""

    async def count(self, project_id: ProjectId) -> int:
        """How many groups the project has."""
        ...

    async def create(self, group: ServerGroup, *, limit: int) -> ServerGroup:
        """Store ``group`` unless its project already has ``limit`` groups (``OverQuota``);
        a negative limit is no limit. One transaction under the project's quota lock."""
        ...

    async def get(self, group_id: GroupId, *, project_id: ProjectId | None = None) -> ServerGroup:
        """The group with its live members; ``NotFound`` for an unknown id, or one of
        another project when ``project_id`` is given."""
        ...

    async def list(self, *, project_id: ProjectId | None = None, limit: int | None = None,
                   offset: int = 0) -> builtins.list[ServerGroup]:
        """Groups of one project (every project when ``None``), oldest first."""
        ...

    async def delete(self, group_id: GroupId, *, project_id: ProjectId | None = None) -> None:
        """Delete the group (its members stay, no longer grouped); ``NotFound`` as get."""
        ...


@dataclass(frozen=True, slots=True, kw_only=True)
class GroupMembers:
    """A server group with its live members, and where each placed member is."""

    group: ServerGroup
    hosts: dict[InstanceId, HostName]


class PlacementRepo(Protocol):
    """What placement reads and checks about server groups beyond node rows."""

    async def group_members(self, group_id: GroupId) -> GroupMembers:
        """``NotFound`` for an unknown group."""
        ...

    async def start_build(self, instance_id: InstanceId, host: HostName) -> str | None:
        """Admit the instance's build on ``host`` against its groups' hard policies and
        move it from scheduling to networking, atomically; the violated rule, or None."""
        ...


class NetworkRepo(Protocol):
    """Networks, subnets and ports with their fixed IPs (IPAM), for the Network API.

    ``viewer`` is the caller's project (``None``: an admin, who sees everything); a
    network is visible to its project and, when shared, to every project; a subnet as
    its network; a port to its project. ``owner`` must own the resource:
    ``NetworkNotFound``/``SubnetNotFound``/``PortNotFound`` when it cannot see it,
    ``Forbidden`` when it sees it (a shared network) without owning it. Creates count
    against the project's ``network``/``subnet``/``port`` quota in their transaction
    (``OverQuota``). The errors are those of :mod:`strato.domain.networks`, named and
    worded as Neutron's.
    """

    async def create_network(self, network: Network) -> Network:
        """Insert ``network`` (``subnets`` ignored); stamps the timestamps."""
        ...

    async def get_network(self, network_id: str, *, viewer: ProjectId | None) -> Network:
        """The network with its subnet ids; ``NetworkNotFound`` unless visible."""
        ...

    async def list_networks(self, *, viewer: ProjectId | None) -> builtins.list[Network]:
        """Every visible network, by id."""
        ...

    async def update_network(self, network_id: str, changes: Mapping[str, object], *,
                             owner: ProjectId | None) -> Network:
        """Set ``name``, ``description``, ``admin_state_up``, ``shared`` or ``mtu``."""
        ...

    async def delete_network(self, network_id: str, *, owner: ProjectId | None) -> None:
        """Delete the network, its subnets and its DHCP ports; ``Conflict`` (NetworkInUse)
        while any other port is on it."""
        ...

    async def create_subnet(self, subnet: Subnet, *, owner: ProjectId | None) -> Subnet:
        """Add a (validated) subnet to a network ``owner`` owns; it takes the network's
        project. ``Invalid`` if its CIDR overlaps another subnet of the network."""
        ...

    async def get_subnet(self, subnet_id: str, *, viewer: ProjectId | None) -> Subnet:
        ...

    async def list_subnets(self, *, viewer: ProjectId | None) -> builtins.list[Subnet]:
        ...

    async def update_subnet(self, subnet_id: str, changes: Mapping[str, object], *,
                            owner: ProjectId | None) -> Subnet:
        """Set ``name``, ``description``, ``dns_nameservers`` (strings), ``host_routes``
        (``HostRoute``s) or ``enable_dhcp``."""
        ...

    async def delete_subnet(self, subnet_id: str, *, owner: ProjectId | None) -> None:
        """Delete the subnet; ``Conflict`` (SubnetInUse) while a non-DHCP port holds one
        of its addresses."""
        ...

    async def create_port(self, port: Port, *, fixed_ips: Sequence[FixedIp] | None,
                          viewer: ProjectId | None) -> Port:
        """Create the port (status DOWN) on a network ``viewer`` sees, with a random
        ``fa:16:3e`` MAC when ``port.mac_address`` is empty (``MacAddressInUse`` when a
        given one is in use on the network), its security groups (of its project, else
        ``SecurityGroupNotFound``) and fixed IPs: ``None`` allocates one address of the
        first subnet with a free one per IP version; otherwise each ``FixedIp`` asks for
        a subnet and/or an address (an empty field is "any"). ``IpAddressAlreadyAllocated``
        when an address is taken, ``IpAddressGenerationFailure`` when a subnet is full,
        ``Invalid`` for an address outside the subnets. All
        in one transaction: nothing is left half-created."""
        ...

    async def get_port(self, port_id: str, *, viewer: ProjectId | None) -> Port:
        ...

    async def list_ports(self, *, viewer: ProjectId | None) -> builtins.list[Port]:
        ...

    async def update_port(self, port_id: str, changes: Mapping[str, object], *,
                          fixed_ips: Sequence[FixedIp] | None = None,
                          security_groups: Sequence[str] | None = None,
                          owner: ProjectId | None) -> Port:
        """Set ``name``, ``description``, ``admin_state_up``, ``device_id``,
        ``device_owner`` or ``binding_host_id``; replace the security groups and/or
        re-allocate the fixed IPs (as :meth:`create_port`), in one transaction."""
        ...

    async def delete_port(self, port_id: str, *, owner: ProjectId | None) -> None:
        """Delete the port; its addresses are free again."""
        ...

    # An instance's ports (device_id = the instance), for the compute through the
    # conductor and for the API's server views.

    async def allocate_for_instance(self, instance_id: str, project_id: ProjectId, host: str,
                                    requested: Sequence[RequestedNetwork],
                                    security_groups: Sequence[str], *,
                                    device_owner: str) -> list[Vif]:
        """The instance's NICs, in request order, bound to ``host``: a new port (made by
        the build: ``auto_delete``) per network entry, or the user's own port bound to
        the instance. One transaction: first whatever the instance held before (an
        earlier attempt) is released, so allocating again is safe. Raises
        ``IpAddressGenerationFailure`` when a network is full, ``PortInUse`` when a
        port belongs to another device."""
        ...

    async def release_instance(self, instance_id: str) -> list[str]:
        """Delete the instance's ``auto_delete`` ports, unbind its other ports (device,
        host and status cleared); the ids of the networks that changed."""
        ...

    async def vifs_for_instances(self, instance_ids: Sequence[str]) -> dict[str, list[Vif]]:
        """Each instance's ports as VIFs, in creation order (every asked id is a key)."""
        ...

    async def ports_on_host(self, host: str) -> list[Port]:
        """The ports bound to ``host`` (``binding:host_id``), DHCP ports excepted."""
        ...

    async def set_ports_status(self, port_ids: Sequence[str], status: PortStatus) -> None:
        """Set the ports' status (``ACTIVE`` once plugged); unknown ids are skipped."""
        ...


class SecurityGroupRepo(Protocol):
    """Security groups and their rules, for the Network API (Neutron's behaviour). The
    errors are the domain errors of :mod:`strato.domain.security_groups`. A rule
    belongs to its group's project; ``project_id`` arguments scope reads and writes to
    one project (``None``: every project, for an admin)."""

    async def ensure_default(self, project_id: ProjectId) -> SecurityGroup:
        """The project's ``default`` group, created when missing with Neutron's rules
        (egress IPv4 and IPv6 anywhere, ingress IPv4 and IPv6 from the group itself);
        two concurrent first calls make one group. No quota check; it counts."""
        ...

    async def create(self, *, project_id: ProjectId, name: str, description: str,
                     group_limit: int, rule_limit: int) -> SecurityGroup:
        """A new group with Neutron's two egress rules (IPv4, IPv6), counted against
        both limits (negative: none) in its transaction; nothing is written past
        either (``SecurityGroupQuotaExceeded``). A ``default`` name is refused."""
        ...

    async def get(self, group_id: str, *,
                  project_id: ProjectId | None = None) -> SecurityGroup:
        """The group with its rules; ``SecurityGroupNotFound`` if unknown or not
        visible."""
        ...

    async def list(self, *, project_id: ProjectId | None = None) -> builtins.list[SecurityGroup]:
        """Groups oldest first, with their rules."""
        ...

    async def update(self, group_id: str, *, project_id: ProjectId | None = None,
                     name: str | None = None,
                     description: str | None = None) -> SecurityGroup:
        """Change name and/or description (``None``: unchanged); the default group
        keeps its name and no other group may be called ``default``."""
        ...

    async def delete(self, group_id: str, *, project_id: ProjectId | None = None,
                     allow_default: bool = False) -> None:
        """Delete the group with its rules and the rules naming it as remote group;
        ``SecurityGroupCannotRemoveDefault`` for the default group (unless
        ``allow_default``), ``SecurityGroupInUse`` while a port has it."""
        ...

    async def add_rule(self, rule: SecurityGroupRule, *, project_id: ProjectId | None = None,
                       limit: int) -> SecurityGroupRule:
        """Store a validated rule (:func:`strato.domain.security_groups.validate_rule`)
        in its group. ``SecurityGroupNotFound`` if the group or the remote group is not
        visible, ``SecurityGroupRuleExists`` for a duplicate, quota exceeded past
        ``limit`` rules of the group's project."""
        ...

    async def get_rule(self, rule_id: str, *,
                       project_id: ProjectId | None = None) -> SecurityGroupRule: ...

    async def list_rules(self, *, project_id: ProjectId | None = None
                         ) -> builtins.list[SecurityGroupRule]:
        """Rules oldest first."""
        ...

    async def delete_rule(self, rule_id: str, *,
                          project_id: ProjectId | None = None) -> None: ...

    async def rules_for_ports(
            self, port_ids: Sequence[str]) -> dict[str, builtins.list[SecurityGroupRule]]:
        """For the data plane: the rules of all groups each port belongs to (every
        asked port is a key)."""
        ...

    async def members(self, group_id: str) -> builtins.list[tuple[str, str]]:
        """For the data plane: ``(port_id, ip_address)`` of every fixed IP of the
        group's ports."""
        ...


class KeyPairRepo(Protocol):
    """A user's key pairs (Nova's os-keypairs), named uniquely per user; the errors are
    those of :mod:`strato.domain.keypairs`."""

    async def create(self, key_pair: KeyPair, *, limit: int) -> KeyPair:
        """Insert ``key_pair`` unless its user already has ``limit`` key pairs
        (``OverQuota``; negative: no limit), in one transaction; ``Conflict`` for a name
        the user already has. Returns it with its ``id`` and ``created_at``."""
        ...

    async def get(self, user_id: UserId, name: str) -> KeyPair:
        """``NotFound`` if the user has no key pair ``name``."""
        ...

    async def list(self, user_id: UserId) -> builtins.list[KeyPair]:
        """The user's key pairs, oldest first."""
        ...

    async def delete(self, user_id: UserId, name: str) -> None:
        """``NotFound`` as :meth:`get`."""
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
    aggregates: AggregateRepo
    groups: ServerGroupRepo
    placement: PlacementRepo
    networks: NetworkRepo
    security_groups: SecurityGroupRepo
    key_pairs: KeyPairRepo

    def now(self) -> datetime:
        """The clock every repository stamps rows with."""
        ...

    async def close(self) -> None: ...
