"""Domain flavors -> Nova 2.1 JSON."""

from __future__ import annotations

from typing import Any

from strato.api.formats import links
from strato.domain.resources import Flavor

__all__ = ["flavor_detail", "flavor_summary"]


def flavor_summary(flavor: Flavor, base: str) -> dict[str, Any]:
    """A flavor in ``GET /flavors``."""
    return {"id": flavor.id, "name": flavor.name, "links": links(base, "flavors", flavor.id)}


def flavor_detail(flavor: Flavor, base: str) -> dict[str, Any]:
    """A flavor in ``GET /flavors/detail`` and ``GET /flavors/{id}``."""
    return {
        **flavor_summary(flavor, base),
        "ram": flavor.memory_mb, "vcpus": flavor.vcpus, "disk": flavor.root_gb,
        "OS-FLV-EXT-DATA:ephemeral": flavor.ephemeral_gb,
        # Before microversion 2.75 Nova shows "no swap" as "", not 0.
        "swap": flavor.swap_mb or "",
        "rxtx_factor": flavor.rxtx_factor,
        "os-flavor-access:is_public": flavor.is_public,
        "OS-FLV-DISABLED:disabled": flavor.disabled,
    }
