"""Domain images and members -> Glance v2 JSON.

Links are Glance's: relative to the image endpoint (``/v2/images/<id>``), which clients
resolve against the endpoint they discovered (``<api>/image``).
"""

from __future__ import annotations

from typing import Any
from urllib.parse import urlencode

from starlette.datastructures import QueryParams

from strato.api.formats import iso_z
from strato.domain.images import Image, ImageMember

__all__ = ["image_view", "images_view", "member_view", "members_view"]


def image_view(image: Image) -> dict[str, Any]:
    """One image in Glance v2's shape: the core attributes, then the extra properties
    at the top level (Glance has no nested "properties")."""
    view: dict[str, Any] = dict(image.properties)
    view.update({
        "id": image.id, "name": image.name, "status": str(image.status),
        "visibility": image.visibility, "protected": image.protected,
        "os_hidden": image.os_hidden, "tags": list(image.tags),
        "disk_format": image.disk_format, "container_format": image.container_format,
        "size": image.size, "virtual_size": image.virtual_size,
        "checksum": image.checksum, "os_hash_algo": image.os_hash_algo,
        "os_hash_value": image.os_hash_value,
        "min_disk": image.min_disk, "min_ram": image.min_ram, "owner": image.owner,
        "created_at": iso_z(image.created_at), "updated_at": iso_z(image.updated_at),
        "self": f"/v2/images/{image.id}", "file": f"/v2/images/{image.id}/file",
        "schema": "/v2/schemas/image",
    })
    return view


def images_view(images: list[Image], *, params: QueryParams,
                next_marker: str | None) -> dict[str, Any]:
    """Glance's list shape. ``first`` and ``next`` keep the request's other query
    parameters; ``next`` is there when the page was full (another may follow)."""
    query = [(k, v) for k, v in params.multi_items() if k != "marker"]
    first = "/v2/images" + (f"?{urlencode(query)}" if query else "")
    body: dict[str, Any] = {"images": [image_view(i) for i in images], "first": first,
                            "schema": "/v2/schemas/images"}
    if next_marker is not None:
        body["next"] = f"/v2/images?{urlencode([*query, ('marker', next_marker)])}"
    return body


def member_view(member: ImageMember) -> dict[str, Any]:
    """One image member, as Glance shows it."""
    return {"image_id": member.image_id, "member_id": member.member_id,
            "status": str(member.status), "created_at": iso_z(member.created_at),
            "updated_at": iso_z(member.updated_at), "schema": "/v2/schemas/member"}


def members_view(members: list[ImageMember]) -> dict[str, Any]:
    """The member list of one image."""
    return {"members": [member_view(m) for m in members], "schema": "/v2/schemas/members"}
