"""Changing an image's metadata: Glance's JSON-patch semantics, as pure functions.

An update is a list of :class:`PatchOp` (``add``, ``replace``, ``remove`` on one
top-level attribute); a create is the same ``add`` operations applied to a new queued
image, so both follow one set of rules (Glance v2):

- read-only attributes (``id``, ``status``, ``size``, ``checksum``, the hashes, dates,
  links) and reserved ones (``location``, ``deleted``, ``os_glance_*``): ``Forbidden``;
- core attributes can be set but not removed (``Forbidden``); their values are checked
  (``Invalid``); ``disk_format``/``container_format`` change only while ``queued``,
  ``owner`` only by an admin and ``visibility=public`` only by an admin (``Forbidden``);
- any other name is a free-form property whose value must be a string; ``replace`` or
  ``remove`` of a property the image does not have is a ``Conflict``; ``kernel_id`` and
  ``ramdisk_id`` (the images an AMI-style image boots) must be image UUIDs, as in
  Glance's schema.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from strato.domain.context import RequestContext
from strato.domain.errors import Conflict, Forbidden, Invalid, OverQuota
from strato.domain.ids import ProjectId
from strato.domain.images import (
    CONTAINER_FORMATS,
    DISK_FORMATS,
    VISIBILITIES,
    Image,
    ImageStatus,
)

__all__ = ["IMAGE_REFERENCES", "MAX_PROPERTIES", "MAX_TAGS", "READ_ONLY", "PatchOp",
           "apply_patch", "check_tag", "check_text"]

# Glance's image_property_quota and image_tag_quota defaults.
MAX_PROPERTIES = 128
MAX_TAGS = 128
_MAX_NAME = 255
_MAX_VALUE = 65535
_MAX_INT = 2**31 - 1

READ_ONLY = frozenset({"id", "status", "size", "virtual_size", "checksum", "os_hash_algo",
                       "os_hash_value", "created_at", "updated_at", "self", "file", "schema",
                       "direct_url", "locations", "stores"})
_RESERVED = frozenset({"location", "deleted", "deleted_at"})
# Extra properties that name another image, by UUID (Glance's schema says so).
IMAGE_REFERENCES = frozenset({"kernel_id", "ramdisk_id"})
_RESERVED_PREFIX = "os_glance"


@dataclass(frozen=True, slots=True, kw_only=True)
class PatchOp:
    """One change: ``op`` is ``add``, ``replace`` or ``remove``; ``name`` the attribute
    (the decoded JSON pointer); ``value`` is unused by ``remove``."""

    op: str
    name: str
    value: object = None


def apply_patch(image: Image, ops: Sequence[PatchOp], ctx: RequestContext) -> Image:
    """``image`` with every operation applied in order, or the first refusal raised
    (nothing is applied then): see the module docstring for the rules."""
    for change in ops:
        image = _apply(image, change, ctx)
    if len(image.properties) > MAX_PROPERTIES:
        raise OverQuota(f"Maximum number of properties ({MAX_PROPERTIES}) exceeded.")
    if len(image.tags) > MAX_TAGS:
        raise OverQuota(f"Maximum number of tags ({MAX_TAGS}) exceeded.")
    return image


def check_text(what: str, value: str, *, max_length: int = _MAX_NAME) -> str:
    """``value`` if it can be stored as text (no NUL, valid UTF-8, at most
    ``max_length`` characters); ``Invalid`` otherwise."""
    if len(value) > max_length:
        raise Invalid(f"{what} is longer than {max_length} characters.")
    if "\0" in value:
        raise Invalid(f"{what} must not contain NUL characters.")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise Invalid(f"{what} is not valid Unicode text.") from None
    return value


def _apply(image: Image, change: PatchOp, ctx: RequestContext) -> Image:
    name = change.name
    if name in READ_ONLY:
        raise Forbidden(f"Attribute '{name}' is read-only.")
    if name in _RESERVED or name.startswith(_RESERVED_PREFIX):
        raise Forbidden(f"Attribute '{name}' is reserved.")
    core = _CORE.get(name)
    if change.op == "remove":
        if core is not None:
            raise Forbidden(f"Property {name} may not be removed.")
        if name not in image.properties:
            raise Conflict(f"Property {name} does not exist.")
        return replace(image, properties={k: v for k, v in image.properties.items()
                                          if k != name})
    if core is not None:
        return core(image, change.value, ctx)
    if change.op == "replace" and name not in image.properties:
        raise Conflict(f"Property {name} does not exist.")
    check_text("Property name", name)
    if not name:
        raise Invalid("Property names must not be empty.")
    if not isinstance(change.value, str):
        raise Invalid(f"Invalid value for property '{name}': extra properties are strings.")
    value = check_text(f"Property '{name}'", change.value, max_length=_MAX_VALUE)
    if name in IMAGE_REFERENCES:
        _check_image_reference(name, value)
    return replace(image, properties={**image.properties, name: value})


def _check_image_reference(name: str, value: str) -> None:
    """Glance's schema: ``kernel_id`` and ``ramdisk_id`` are image UUIDs."""
    try:
        uuid.UUID(value)
        if len(value) != 36:
            raise ValueError(value)
    except ValueError:
        raise Invalid(f"Invalid value {_short(value)} for '{name}': expected the UUID of "
                      "an image.") from None


# ---- core attributes: each checks its value and returns the changed image ----------------


def _set_name(image: Image, value: object, ctx: RequestContext) -> Image:
    if value is not None and not isinstance(value, str):
        raise Invalid("Invalid value for 'name': expected a string or null.")
    return replace(image, name=None if value is None else check_text("name", value))


def _format_setter(field: str, allowed: frozenset[str]) -> Callable[..., Image]:
    def set_format(image: Image, value: object, ctx: RequestContext) -> Image:
        if value is not None and (not isinstance(value, str) or value not in allowed):
            raise Invalid(f"Invalid value {_short(value)} for '{field}': expected one of "
                          f"{', '.join(sorted(allowed))}.")
        if value != getattr(image, field) and image.status != ImageStatus.QUEUED:
            raise Forbidden(f"Attribute {field} can be only replaced for a queued image.")
        return replace(image, **_field(field, value))
    return set_format


def _set_visibility(image: Image, value: object, ctx: RequestContext) -> Image:
    if value not in VISIBILITIES:
        raise Invalid(f"Invalid value {_short(value)} for 'visibility': expected one of "
                      f"{', '.join(VISIBILITIES)}.")
    if value == "public" and image.visibility != "public" and not ctx.is_admin:
        raise Forbidden("You are not authorized to publicize images.")
    return replace(image, visibility=str(value))


def _flag_setter(field: str) -> Callable[..., Image]:
    def set_flag(image: Image, value: object, ctx: RequestContext) -> Image:
        if not isinstance(value, bool):
            raise Invalid(f"Invalid value {_short(value)} for '{field}': expected a boolean.")
        return replace(image, **_field(field, value))
    return set_flag


def _minimum_setter(field: str) -> Callable[..., Image]:
    def set_minimum(image: Image, value: object, ctx: RequestContext) -> Image:
        if isinstance(value, bool) or not isinstance(value, int) or \
                not 0 <= value <= _MAX_INT:
            raise Invalid(f"Invalid value {_short(value)} for '{field}': expected an "
                          f"integer from 0 to {_MAX_INT}.")
        return replace(image, **_field(field, value))
    return set_minimum


def _set_owner(image: Image, value: object, ctx: RequestContext) -> Image:
    if value is not None and not isinstance(value, str):
        raise Invalid("Invalid value for 'owner': expected a string or null.")
    if value != image.owner and not ctx.is_admin:
        raise Forbidden("Owner can't be updated by non admin.")
    return replace(image, owner=None if value is None else ProjectId(check_text("owner", value)))


def _set_tags(image: Image, value: object, ctx: RequestContext) -> Image:
    if not isinstance(value, list) or not all(isinstance(tag, str) for tag in value):
        raise Invalid("Invalid value for 'tags': expected a list of strings.")
    return replace(image, tags=tuple(sorted({check_tag(tag) for tag in value})))


def check_tag(tag: str) -> str:
    """``tag`` if it is a valid tag (1 to 255 characters of text); ``Invalid`` otherwise."""
    if not tag:
        raise Invalid("Tags must not be empty.")
    return check_text("Tag", tag)


_CORE: dict[str, Callable[[Image, Any, RequestContext], Image]] = {
    "name": _set_name,
    "disk_format": _format_setter("disk_format", DISK_FORMATS),
    "container_format": _format_setter("container_format", CONTAINER_FORMATS),
    "visibility": _set_visibility,
    "protected": _flag_setter("protected"),
    "os_hidden": _flag_setter("os_hidden"),
    "min_disk": _minimum_setter("min_disk"),
    "min_ram": _minimum_setter("min_ram"),
    "owner": _set_owner,
    "tags": _set_tags,
}


def _field(name: str, value: object) -> dict[str, Any]:
    # One keyword for dataclasses.replace, typed loosely: the setter checked the value.
    return {name: value}


def _short(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
