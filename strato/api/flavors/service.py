"""Flavor lookups shared by the flavor routes and server creation."""

from __future__ import annotations

from strato.db.ports import Database
from strato.domain.context import RequestContext
from strato.domain.errors import NotFound
from strato.domain.ids import FlavorId
from strato.domain.resources import Flavor

__all__ = ["get_flavor"]


async def get_flavor(db: Database, ctx: RequestContext, flavor_id: str) -> Flavor:
    """The flavor if the caller may see it; ``NotFound`` (Nova's message) otherwise.
    A private flavor is invisible to non-admins (strato has no flavor access lists)."""
    try:
        flavor = await db.flavors.get(FlavorId(flavor_id))
    except NotFound:
        flavor = None
    if flavor is None or not (flavor.is_public or ctx.is_admin):
        raise NotFound(f"Flavor {flavor_id} could not be found.")
    return flavor
