"""The flavor repository (its adapter: :mod:`strato.db._catalog`)."""

from __future__ import annotations

from typing import Protocol

from strato.domain.ids import FlavorId
from strato.domain.resources import Flavor

__all__ = ["FlavorRepo"]


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
