"""The host aggregate repository (its adapter: :mod:`strato.db._aggregates`)."""

from __future__ import annotations

import builtins
from collections.abc import Mapping
from typing import Protocol

from strato.domain.aggregates import Aggregate
from strato.domain.ids import HostName

__all__ = ["AggregateRepo"]


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
