"""Glance v2 request bodies -> domain :class:`~strato.domain.images.Image`."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from strato.api.bodies import parse_model
from strato.domain.context import RequestContext
from strato.domain.errors import Forbidden, Invalid
from strato.domain.ids import ImageId, new_uuid
from strato.domain.images import CONTAINER_FORMATS, DISK_FORMATS, Image

__all__ = ["image_from_create"]

# Attributes Glance computes itself: a client may not set them (Glance answers 403).
_READ_ONLY = frozenset({"status", "size", "virtual_size", "checksum", "created_at",
                        "updated_at", "owner", "self", "file", "schema", "direct_url",
                        "locations", "os_hash_algo", "os_hash_value"})
_MAX_INT = 2**31 - 1


class _CreateImage(BaseModel):
    model_config = ConfigDict(strict=True, extra="forbid", frozen=True)

    id: str | None = None
    name: Annotated[str, Field(max_length=255)] | None = None
    disk_format: str | None = None
    container_format: str | None = None
    visibility: Literal["public", "private", "shared", "community"] = "shared"
    min_disk: Annotated[int, Field(ge=0, le=_MAX_INT)] = 0
    min_ram: Annotated[int, Field(ge=0, le=_MAX_INT)] = 0
    protected: bool = False
    tags: Annotated[list[str], Field(max_length=0)] = []  # not stored yet: refuse, not drop


def image_from_create(body: Any, ctx: RequestContext) -> Image:
    """The ``queued`` image a ``POST /v2/images`` body describes, owned by the caller.

    Unknown keys are Glance's "extra properties" and must be strings; read-only
    attributes are refused with ``Forbidden``, as Glance does.
    """
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.")
    known = set(_CreateImage.model_fields)
    for key in body.keys() & _READ_ONLY:
        raise Forbidden(f"Attribute '{key}' is read-only.")
    fields = parse_model(_CreateImage, {k: v for k, v in body.items() if k in known})
    properties = _properties({k: v for k, v in body.items() if k not in known})
    _check_formats(fields)
    if fields.visibility == "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to publicize images.")
    now = datetime.now(UTC)
    return Image(id=_image_id(fields.id), name=fields.name, disk_format=fields.disk_format,
                 container_format=fields.container_format, min_disk=fields.min_disk,
                 min_ram=fields.min_ram, visibility=fields.visibility,
                 protected=fields.protected, owner=ctx.project_id, properties=properties,
                 created_at=now, updated_at=now)


def _image_id(raw: str | None) -> ImageId:
    if raw is None:
        return ImageId(new_uuid())
    try:
        return ImageId(str(uuid.UUID(raw)))
    except ValueError:
        raise Invalid(f"Invalid id {raw!r}: an image id must be a UUID.") from None


def _properties(extra: dict[str, Any]) -> dict[str, str]:
    for key, value in extra.items():
        if not isinstance(value, str) or not 1 <= len(key) <= 255 or len(value) > 65535:
            raise Invalid(f"Invalid property {key!r}: extra properties are strings "
                          "(names of 1 to 255 characters).")
    return dict(extra)


def _check_formats(fields: _CreateImage) -> None:
    if fields.disk_format is not None and fields.disk_format not in DISK_FORMATS:
        raise Invalid(f"Invalid disk format {fields.disk_format!r}; expected one of "
                      f"{', '.join(sorted(DISK_FORMATS))}.")
    if fields.container_format is not None and fields.container_format not in CONTAINER_FORMATS:
        raise Invalid(f"Invalid container format {fields.container_format!r}; expected one "
                      f"of {', '.join(sorted(CONTAINER_FORMATS))}.")
