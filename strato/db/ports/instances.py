"""The instance repository (its adapter: :mod:`strato.db._instances`)."""

from __future__ import annotations

import builtins
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from strato.domain.ids import GroupId, HostName, InstanceId, ProjectId, RequestId
from strato.domain.instances import Instance, InstanceChanges, TaskState, VmState
from strato.domain.resources import Flavor

__all__ = ["ANY_TASK_STATE", "InstanceQuery", "InstanceRepo"]


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
    image_ref: str | None = None         # the image id the instance was booted from
    flavor_id: str | None = None         # the flavor id (flavorid) it was booted with
    ip: str | None = None                # a regular expression, matched (re.match, as
    ip6: str | None = None               # Nova) with its ports' IPv4 / IPv6 addresses
    include_deleted: bool = False        # changes-since also implies deleted ones
    limit: int | None = None
    marker: InstanceId | None = None     # start after this instance (NotFound if unknown)


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
