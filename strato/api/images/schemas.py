"""Glance v2 requests -> what the image service takes: patch operations, list queries.

Wire-format checks live here (a JSON pointer's syntax, a query parameter's spelling);
what a change may do to an image is :mod:`strato.image.patch`'s business. Every failure
is a domain error (``Invalid`` 400, ``Forbidden`` 403) or a 415 ``ApiFault``.
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from starlette.datastructures import QueryParams

from strato.api.errors import ApiFault
from strato.db.ports import IMAGE_SORT_KEYS, ImageQuery, ImageSort
from strato.domain.errors import Forbidden, Invalid
from strato.domain.ids import ImageId, ProjectId, new_uuid
from strato.domain.images import MemberStatus
from strato.image.patch import PatchOp, check_text

__all__ = ["PATCH_MEDIA_TYPES", "member_from_body", "member_status_from_body",
           "ops_from_create", "ops_from_patch", "query_from_params", "upload_size"]

# Media type -> JSON-patch flavour: draft 10 ({"op", "path", "value"}) and the deprecated
# draft 4 ({"replace": "/name", "value"}).
PATCH_MEDIA_TYPES = {"application/openstack-images-v2.1-json-patch": 10,
                     "application/openstack-images-v2.0-json-patch": 4}
_OPERATIONS = ("add", "remove", "replace")
# Links and store details a client may never send (Glance answers 403).
_DISALLOWED = ("self", "file", "schema", "direct_url", "stores")

# Glance's limit_param_default and api_limit_max.
DEFAULT_LIMIT = 25
MAX_LIMIT = 1000


def ops_from_create(body: Any) -> tuple[ImageId, list[PatchOp]]:
    """A ``POST /v2/images`` body: the new image's id (given or fresh) and its
    attributes as ``add`` operations."""
    if not isinstance(body, dict):
        raise Invalid("The request body must be a JSON object.")
    for key in _DISALLOWED:
        if key in body:
            raise Forbidden(f"Attribute '{key}' is read-only.")
    fields = dict(body)
    image_id = _image_id(fields.pop("id", None))
    return image_id, [PatchOp(op="add", name=key, value=value)
                      for key, value in fields.items()]


def _image_id(raw: object) -> ImageId:
    if raw is None:
        return ImageId(new_uuid())
    try:
        if not isinstance(raw, str):
            raise ValueError(raw)
        return ImageId(str(uuid.UUID(raw)))
    except ValueError:
        raise Invalid(f"Invalid id {raw!r}: an image id must be a UUID.") from None


def ops_from_patch(content_type: str, body: Any) -> list[PatchOp]:
    """A ``PATCH /v2/images/{id}`` body of ``content_type``: 415 for any other media type
    than Glance's two JSON-patch types, ``Invalid`` for a malformed operation."""
    draft = PATCH_MEDIA_TYPES.get(content_type)
    if draft is None:
        raise ApiFault(415, f"Unsupported Content-Type {content_type or '(none)'!r}: send "
                            "application/openstack-images-v2.1-json-patch.",
                       headers={"Accept-Patch": ", ".join(sorted(PATCH_MEDIA_TYPES))})
    if not isinstance(body, list):
        raise Invalid("Request body must be a JSON array of operation objects.")
    return [_operation(raw, draft) for raw in body]


def _operation(raw: object, draft: int) -> PatchOp:
    if not isinstance(raw, dict):
        raise Invalid("Operations must be JSON objects.")
    op, path = _op_and_path(raw) if draft == 10 else _op_and_path_d4(raw)
    if not isinstance(path, str):
        raise Invalid("The operation's path must be a string (a JSON pointer).")
    name = _decode_pointer(path)
    if op == "remove":
        return PatchOp(op=op, name=name)
    if "value" not in raw:
        raise Invalid(f'Operation "{op}" requires a member named "value".')
    return PatchOp(op=op, name=name, value=raw["value"])


def _op_and_path(raw: Mapping[str, Any]) -> tuple[str, object]:
    op = raw.get("op")
    if op is None:
        raise Invalid("Unable to find `op` in JSON Schema change. It must be one of the "
                      f"following: {', '.join(_OPERATIONS)}.")
    if op not in _OPERATIONS:
        raise Invalid(f"Invalid operation: `{str(op)[:50]}`. It must be one of the "
                      f"following: {', '.join(_OPERATIONS)}.")
    if "path" not in raw:
        raise Invalid("Unable to find 'path' in JSON Schema change")
    return str(op), raw["path"]


def _op_and_path_d4(raw: Mapping[str, Any]) -> tuple[str, object]:
    ops = [key for key in _OPERATIONS if key in raw]
    if len(ops) != 1:
        raise Invalid('Operation objects must contain exactly one member named "add", '
                      '"remove", or "replace".')
    return ops[0], raw[ops[0]]


def _decode_pointer(pointer: str) -> str:
    """The one attribute name a JSON pointer (``/name``) designates; Glance's rules."""
    shown = pointer[:80]
    if not pointer.startswith("/"):
        raise Invalid(f'Pointer `{shown}` does not start with "/".')
    if pointer.endswith("/") and len(pointer) > 1:
        raise Invalid(f'Pointer `{shown}` end with "/".')
    if re.search("~[^01]", pointer) or pointer.endswith("~"):
        raise Invalid(f'Pointer `{shown}` contains "~" not part of a recognized escape '
                      "sequence.")
    parts = pointer[1:].split("/")
    if len(parts) != 1 or not parts[0].strip():
        raise Invalid(f"Invalid JSON pointer for this resource: '{shown}'")
    return parts[0].replace("~1", "/").replace("~0", "~").strip()


def member_from_body(body: Any) -> str:
    """``{"member": "<project id>"}``: the project to share with."""
    if not isinstance(body, dict) or not isinstance(body.get("member"), str) \
            or not body["member"]:
        raise Invalid("Request body must be a JSON object with a 'member' string.")
    return check_text("member", body["member"])


def member_status_from_body(body: Any) -> MemberStatus:
    """``{"status": "accepted"}``: a member's answer."""
    status = body.get("status") if isinstance(body, dict) else None
    if status not in tuple(MemberStatus):
        raise Invalid(f"Invalid status: {str(status)[:50]}. It must be one of "
                      f"{', '.join(MemberStatus)}.")
    return MemberStatus(status)


def upload_size(content_length: str | None) -> int | None:
    """The length an upload declares (``None`` for a chunked upload)."""
    if content_length is None:
        return None
    if not content_length.isascii() or not content_length.isdigit():
        raise Invalid(f"Invalid Content-Length {content_length[:30]!r}.")
    return int(content_length)


# ---- list queries ------------------------------------------------------------------------

_VISIBILITY_FILTERS = ("public", "private", "shared", "community", "all")
_MEMBER_STATUSES = (*MemberStatus, "all")
_EXACT = ("id", "name", "status", "owner", "disk_format", "container_format")
# The filters that take an operator, ``eq:`` (the default) or ``in:`` (Glance's list).
_OPERATOR_FILTERS = ("id", "name", "status", "disk_format", "container_format")
_UNSUPPORTED = ("created_at", "updated_at", "changes-since")
# Every other parameter filters on an extra property, as in Glance (os_distro=debian).
_NOT_PROPERTIES = frozenset({*_EXACT, "limit", "marker", "sort", "sort_key", "sort_dir",
                             "member_status", "visibility", "tag", "protected", "os_hidden",
                             "size_min", "size_max"})


def query_from_params(params: QueryParams) -> ImageQuery:
    """A ``GET /v2/images`` query string -> :class:`ImageQuery` (without the viewer)."""
    for key in _UNSUPPORTED:
        if key in params:
            raise Invalid(f"The {key!r} filter is not supported.")
    exact = {key: _text(key, params[key]) for key in _EXACT if key in params}
    one_of: list[tuple[str, tuple[str, ...]]] = []
    for key in _OPERATOR_FILTERS:
        if key in exact:
            operator, operand = _split_operator(exact[key])
            if operator == "in":
                one_of.append((key, _split_in(operand)))
                del exact[key]
            else:
                exact[key] = operand
    properties = tuple((_text("property", key), _text(key, value))
                       for key, value in params.multi_items() if key not in _NOT_PROPERTIES)
    return ImageQuery(
        id=ImageId(exact["id"]) if "id" in exact else None, properties=properties,
        visibility=_choice(params, "visibility", _VISIBILITY_FILTERS),
        member_status=_member_status(params.get("member_status", "accepted")),
        name=exact.get("name"), status=exact.get("status"),
        owner=ProjectId(exact["owner"]) if "owner" in exact else None,
        disk_format=exact.get("disk_format"),
        container_format=exact.get("container_format"), one_of=tuple(one_of),
        tags=tuple(_text("tag", tag) for tag in params.getlist("tag")),
        protected=_flag(params, "protected", None),
        os_hidden=_flag(params, "os_hidden", False),
        size_min=_count(params, "size_min"), size_max=_count(params, "size_max"),
        sort=_sort(params), limit=_limit(params),
        marker=ImageId(params["marker"]) if params.get("marker") else None)


def _split_operator(value: str) -> tuple[str, str]:
    """``in:a,b`` -> ``("in", "a,b")``; a value without an operator (or an ISO 8601
    time, whose colons are no operator) is ``eq``. Glance's ``split_filter_op``, and the
    same 400 for any operator but ``eq`` and ``in``."""
    operator, sep, operand = value.partition(":")
    if not sep or _is_isotime(value):
        return "eq", value
    if operator not in ("eq", "in"):
        raise Invalid(f"Unable to filter by unknown operator '{operator[:50]}'.")
    return operator, operand


def _is_isotime(value: str) -> bool:
    try:
        datetime.fromisoformat(value)
    except ValueError:
        return False
    return True


# One value of an ``in:`` list: a double-quoted string (which may hold commas and
# backslash-escaped characters, kept as sent) or a run of non-commas; Glance's
# ``split_filter_value_for_quotes``.
_IN_VALUE = re.compile(r'"([^"\\]*(?:\\.[^"\\]*)*)",?|([^,]+),?|,')


def _split_in(operand: str) -> tuple[str, ...]:
    """The values of ``in:a,"b,c"`` (``a`` and ``b,c``); ``Invalid`` for a quote that is
    not closed or has no comma before or after it (Glance's ``validate_quotes``)."""
    quoted = False
    for i, char in enumerate(operand):
        if char != '"' or (i and operand[i - 1] == "\\"):
            continue
        if not quoted and i and operand[i - 1] != ",":
            raise Invalid(f"Invalid filter value {operand[:80]}. There is no comma before "
                          "opening quotation mark.")
        if quoted and i + 1 != len(operand) and operand[i + 1] != ",":
            raise Invalid(f"Invalid filter value {operand[:80]}. There is no comma after "
                          "closing quotation mark.")
        quoted = not quoted
    if quoted:
        raise Invalid(f"Invalid filter value {operand[:80]}. The quote is not closed.")
    return tuple(q or plain for q, plain in _IN_VALUE.findall(operand))


def _text(key: str, value: str) -> str:
    return check_text(f"The {key!r} filter", value)


def _choice(params: QueryParams, key: str, allowed: tuple[str, ...]) -> str | None:
    value = params.get(key)
    if value is not None and value not in allowed:
        raise Invalid(f"Invalid {key} value: {value[:50]}")
    return value


def _member_status(value: str) -> MemberStatus | None:
    if value not in _MEMBER_STATUSES:
        raise Invalid(f"Invalid status: {value[:50]}")
    return None if value == "all" else MemberStatus(value)


def _flag(params: QueryParams, key: str, default: bool | None) -> bool | None:
    value = params.get(key)
    if value is None:
        return default
    if value.lower() not in ("true", "false"):
        raise Invalid(f"Invalid value '{value[:50]}' for '{key}' filter. Valid values are "
                      "'true' or 'false'.")
    return value.lower() == "true"


def _count(params: QueryParams, key: str) -> int | None:
    value = params.get(key)
    if value is None:
        return None
    if not value.isascii() or not value.isdigit() or int(value) >= 2**63:
        raise Invalid(f"{key} param must be a non-negative integer")
    return int(value)


def _limit(params: QueryParams) -> int:
    limit = _count(params, "limit")
    return DEFAULT_LIMIT if limit is None else min(limit, MAX_LIMIT)


def _sort(params: QueryParams) -> tuple[ImageSort, ...]:
    """``sort=name:asc,created_at`` (direction ``desc`` when left out) or the legacy
    ``sort_key=name&sort_dir=asc`` (repeatable; one direction applies to every key)."""
    if "sort" in params:
        if "sort_key" in params or "sort_dir" in params:
            raise Invalid("Old and new sorting syntax cannot be combined")
        pairs = [item.partition(":") for item in params["sort"].split(",")]
        return tuple(_sort_key(key.strip(), direction.strip() or "desc")
                     for key, _, direction in pairs)
    keys = [key.strip() for key in params.getlist("sort_key")]
    dirs = [d.strip() for d in params.getlist("sort_dir")]
    if len(dirs) > 1 and len(dirs) != len(keys):
        raise Invalid("Number of sort dirs does not match the number of sort keys")
    if not keys:
        keys = ["created_at"]
    dirs = dirs if len(dirs) > 1 else dirs * len(keys) if dirs else ["desc"] * len(keys)
    return tuple(_sort_key(key, direction) for key, direction in zip(keys, dirs, strict=True))


def _sort_key(key: str, direction: str) -> ImageSort:
    if key not in IMAGE_SORT_KEYS:
        raise Invalid(f"Invalid sort key: {key[:50]}. It must be one of the following: "
                      f"{', '.join(IMAGE_SORT_KEYS)}.")
    if direction not in ("asc", "desc"):
        raise Invalid(f"Invalid sort direction: {direction[:50]}")
    return ImageSort(key=key, ascending=direction == "asc")
