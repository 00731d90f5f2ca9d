"""The JSON-schema documents of ``/v2/schemas/*``, in Glance's shapes.

Clients read them: python-glanceclient builds its image model from ``/v2/schemas/image``
(which attributes exist, which are read-only, that extra properties are strings) and
derives its JSON patches from it. Each function returns a fresh document.
"""

from __future__ import annotations

from typing import Any

from strato.domain.images import (
    CONTAINER_FORMATS,
    DISK_FORMATS,
    VISIBILITIES,
    ImageStatus,
    MemberStatus,
)

__all__ = ["image_schema", "images_schema", "member_schema", "members_schema"]

_UUID = ("^([0-9a-fA-F]){8}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}-([0-9a-fA-F]){4}"
         "-([0-9a-fA-F]){12}$")


def _nullable(kind: str, description: str, **extra: Any) -> dict[str, Any]:
    return {"type": ["null", kind], "description": description, **extra}


def _read_only(kind: str | list[str], description: str, **extra: Any) -> dict[str, Any]:
    return {"type": kind, "readOnly": True, "description": description, **extra}


def _image_properties() -> dict[str, Any]:
    return {
        "id": {"type": "string", "description": "An identifier for the image",
               "pattern": _UUID},
        "name": _nullable("string", "Descriptive name for the image", maxLength=255),
        "status": _read_only("string", "Status of the image",
                             enum=[str(s) for s in ImageStatus]),
        "visibility": {"type": "string", "description": "Scope of image accessibility",
                       "enum": list(VISIBILITIES)},
        "protected": {"type": "boolean",
                      "description": "If true, image will not be deletable."},
        "os_hidden": {"type": "boolean", "description": "If true, image will not appear "
                                                        "in default image list response."},
        "checksum": _read_only(["null", "string"], "md5 hash of image contents.",
                               maxLength=32),
        "os_hash_algo": _read_only(["null", "string"],
                                   "Algorithm to calculate the os_hash_value", maxLength=64),
        "os_hash_value": _read_only(["null", "string"], "Hexdigest of the image contents "
                                    "using the algorithm specified by the os_hash_algo",
                                    maxLength=128),
        "owner": _nullable("string", "Owner of the image", maxLength=255),
        "size": _read_only(["null", "integer"], "Size of image file in bytes"),
        "virtual_size": _read_only(["null", "integer"], "Virtual size of image in bytes"),
        "container_format": _nullable("string", "Format of the container",
                                      enum=[None, *sorted(CONTAINER_FORMATS)]),
        "disk_format": _nullable("string", "Format of the disk",
                                 enum=[None, *sorted(DISK_FORMATS)]),
        "created_at": _read_only("string", "Date and time of image registration"),
        "updated_at": _read_only("string", "Date and time of the last image modification"),
        "tags": {"type": "array", "description": "List of strings related to the image",
                 "items": {"type": "string", "maxLength": 255}},
        "direct_url": _read_only("string", "URL to access the image file kept in external "
                                           "store"),
        "min_ram": {"type": "integer",
                    "description": "Amount of ram (in MB) required to boot image."},
        "min_disk": {"type": "integer",
                     "description": "Amount of disk space (in GB) required to boot image."},
        "self": _read_only("string", "An image self url"),
        "file": _read_only("string", "An image file url"),
        "schema": _read_only("string", "An image schema url"),
        "kernel_id": _nullable("string", "ID of image stored in Glance that should be "
                               "used as the kernel when booting an AMI-style image.",
                               pattern=_UUID),
        "ramdisk_id": _nullable("string", "ID of image stored in Glance that should be "
                                "used as the ramdisk when booting an AMI-style image.",
                                pattern=_UUID),
        "locations": {"type": "array", "description": "A set of URLs to access the image "
                                                     "file kept in external store",
                      "items": {"type": "object", "required": ["url", "metadata"],
                                "properties": {"url": {"type": "string", "maxLength": 255},
                                               "metadata": {"type": "object"}}}},
    }


def image_schema() -> dict[str, Any]:
    """``GET /v2/schemas/image``: extra properties are allowed, and are strings."""
    return {"name": "image", "properties": _image_properties(),
            "additionalProperties": {"type": "string"},
            "links": [{"rel": "self", "href": "{self}"},
                      {"rel": "enclosure", "href": "{file}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def images_schema() -> dict[str, Any]:
    """``GET /v2/schemas/images``: a page of images and its links."""
    return {"name": "images",
            "properties": {"images": {"type": "array", "items": image_schema()},
                           "schema": {"type": "string"}, "first": {"type": "string"},
                           "next": {"type": "string"}},
            "links": [{"rel": "first", "href": "{first}"},
                      {"rel": "next", "href": "{next}"},
                      {"rel": "describedby", "href": "{schema}"}]}


def member_schema() -> dict[str, Any]:
    """``GET /v2/schemas/member``."""
    return {"name": "member", "properties": {
        "created_at": {"type": "string",
                       "description": "Date and time of image member creation"},
        "image_id": {"type": "string", "description": "An identifier for the image",
                     "pattern": _UUID},
        "member_id": {"type": "string",
                      "description": "An identifier for the image member (tenantId)"},
        "schema": {"type": "string", "readOnly": True},
        "status": {"type": "string", "description": "The status of this image member",
                   "enum": [str(s) for s in MemberStatus]},
        "updated_at": {"type": "string",
                       "description": "Date and time of last modification of image member"},
    }}


def members_schema() -> dict[str, Any]:
    """``GET /v2/schemas/members``."""
    return {"name": "members",
            "properties": {"members": {"type": "array", "items": member_schema()},
                           "schema": {"type": "string"}},
            "links": [{"rel": "describedby", "href": "{schema}"}]}
