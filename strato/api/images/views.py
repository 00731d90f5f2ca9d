"""Domain images -> Glance v2 JSON."""

from __future__ import annotations

from typing import Any

from strato.api.formats import iso_z
from strato.domain.images import Image

__all__ = ["image_view", "images_view"]


def image_view(image: Image) -> dict[str, Any]:
    """One image in Glance v2's shape: core attributes, then the extra properties at the
    top level (Glance has no nested "properties")."""
    view: dict[str, Any] = dict(image.properties)
    view.update({
        "id": image.id, "name": image.name, "status": str(image.status),
        "visibility": image.visibility, "protected": image.protected,
        "os_hidden": False, "tags": [],
        "disk_format": image.disk_format, "container_format": image.container_format,
        "size": image.size, "virtual_size": image.virtual_size,
        "checksum": image.checksum,
        # Glance's multihash: strato computes only MD5 so far.
        "os_hash_algo": None, "os_hash_value": None,
        "min_disk": image.min_disk, "min_ram": image.min_ram, "owner": image.owner,
        "created_at": iso_z(image.created_at), "updated_at": iso_z(image.updated_at),
        "self": f"/v2/images/{image.id}", "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    })
    return view


def images_view(images: list[Image], *, next_marker: str | None,
                limit: int) -> dict[str, Any]:
    """Glance's list shape; ``next`` is present when another page may follow."""
    body: dict[str, Any] = {"images": [image_view(i) for i in images],
                            "first": "/v2/images", "schema": "/v2/schemas/images"}
    if next_marker is not None:
        body["next"] = f"/v2/images?limit={limit}&marker={next_marker}"
    return body
