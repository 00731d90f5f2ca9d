"""Images: the record the image service keeps, who may see and change it, and sharing.

An image's status moves ``queued -> saving -> active`` as its data is uploaded (back to
``queued`` when the data is refused, ``killed`` when the upload breaks), and
``active <-> deactivated`` by an owner or admin. Its ``visibility`` decides who may read
it (Glance v2.5 semantics):

    public      everyone, in every list
    community   everyone by id; in lists only when asked for (visibility=community)
    shared      the owner and the image's members (projects the owner added); an
                accepted member sees it in its default list, any member by id
    private     the owner only

Admins see everything. Only the owner or an admin changes an image.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from strato.domain.context import RequestContext
from strato.domain.ids import ImageId, ProjectId

__all__ = ["CONTAINER_FORMATS", "DISK_FORMATS", "HASH_ALGO", "VISIBILITIES", "Image",
           "ImageData", "ImageMember", "ImageStatus", "MemberStatus", "may_modify",
           "may_see"]

DISK_FORMATS = frozenset({"raw", "qcow2", "iso", "aki", "ari", "ami", "vmdk", "vdi", "vhd",
                          "vhdx"})
CONTAINER_FORMATS = frozenset({"bare", "ovf", "aki", "ari", "ami", "ova", "docker",
                               "compressed"})
VISIBILITIES = ("public", "community", "shared", "private")
# Glance's os_hash_algo: the secure hash computed over the data besides the MD5 checksum.
HASH_ALGO = "sha512"


class ImageStatus(enum.StrEnum):
    QUEUED = "queued"
    SAVING = "saving"
    ACTIVE = "active"
    KILLED = "killed"
    DELETED = "deleted"
    DEACTIVATED = "deactivated"


class MemberStatus(enum.StrEnum):
    """A member's answer to a share: only ``accepted`` puts the image in its lists."""

    PENDING = "pending"
    ACCEPTED = "accepted"
    REJECTED = "rejected"


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """One image's metadata. ``properties`` are Glance's free-form "extra properties"
    (string values); ``tags`` are kept sorted."""

    id: ImageId
    name: str | None
    status: ImageStatus = ImageStatus.QUEUED
    disk_format: str | None = None
    container_format: str | None = None
    size: int | None = None
    virtual_size: int | None = None
    checksum: str | None = None
    os_hash_algo: str | None = None
    os_hash_value: str | None = None
    min_disk: int = 0
    min_ram: int = 0
    visibility: str = "shared"
    protected: bool = False
    os_hidden: bool = False
    owner: ProjectId | None = None
    properties: dict[str, str] = field(default_factory=dict)
    tags: tuple[str, ...] = ()
    created_at: datetime | None = None
    updated_at: datetime | None = None


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageData:
    """What an upload learnt about the data: recorded when the image becomes active."""

    size: int
    checksum: str                 # MD5 hex digest (Glance's "checksum")
    os_hash_value: str            # SHA-512 hex digest
    virtual_size: int | None      # the disk's size as a guest sees it
    os_hash_algo: str = HASH_ALGO


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageMember:
    """A project an image is shared with, and its answer."""

    image_id: ImageId
    member_id: ProjectId
    status: MemberStatus = MemberStatus.PENDING
    created_at: datetime | None = None
    updated_at: datetime | None = None


def may_see(image: Image, ctx: RequestContext, member: ImageMember | None = None) -> bool:
    """Whether the caller may read ``image`` (show it by id, download it, boot it).

    ``member`` is the caller's membership of the image, if any (any status counts: a
    pending member may look at what it was offered)."""
    if ctx.is_admin or (image.owner is not None and image.owner == ctx.project_id):
        return True
    if image.visibility in ("public", "community"):
        return True
    return image.visibility == "shared" and member is not None


def may_modify(image: Image, ctx: RequestContext) -> bool:
    """Whether the caller may change ``image``: its owner or an admin."""
    return ctx.is_admin or (image.owner is not None and image.owner == ctx.project_id)
