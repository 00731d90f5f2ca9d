"""The image repository: images, tags, members (its adapter: :mod:`strato.db._images`)."""

from __future__ import annotations

import builtins
from dataclasses import dataclass
from typing import Protocol

from strato.domain.ids import ImageId, ProjectId
from strato.domain.images import Image, ImageData, ImageMember, ImageStatus, MemberStatus

__all__ = ["IMAGE_SORT_KEYS", "ImageQuery", "ImageRepo", "ImageSort"]


# Keys images may be sorted by (Glance's list).
IMAGE_SORT_KEYS = ("name", "status", "container_format", "disk_format", "size", "id",
                   "created_at", "updated_at")


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageSort:
    """One sort key of an image list; ``key`` is one of :data:`IMAGE_SORT_KEYS`."""

    key: str
    ascending: bool = False


@dataclass(frozen=True, slots=True, kw_only=True)
class ImageQuery:
    """What an image list shows, to whom, in which order; ``None`` means "no filter".

    ``viewer`` is the caller's project, or ``None`` for an admin (who sees every image).
    ``visibility`` ``None`` is the default list: the viewer's own images, public ones
    and shared ones it is a member of with ``member_status`` (``None``: any status);
    ``"all"`` adds community images. ``tags`` must all be present. Sorting always ends
    with ``created_at`` and ``id`` (descending), so pages never overlap.
    """

    viewer: ProjectId | None = None
    id: ImageId | None = None
    visibility: str | None = None
    member_status: MemberStatus | None = MemberStatus.ACCEPTED
    name: str | None = None
    status: str | None = None
    owner: ProjectId | None = None
    disk_format: str | None = None
    container_format: str | None = None
    # Glance's ``in:`` filters: (attribute, the values one of which it must have); the
    # attributes are id, name, status, disk_format and container_format.
    one_of: tuple[tuple[str, tuple[str, ...]], ...] = ()
    tags: tuple[str, ...] = ()
    properties: tuple[tuple[str, str], ...] = ()   # extra properties that must match
    protected: bool | None = None
    os_hidden: bool | None = False
    size_min: int | None = None
    size_max: int | None = None
    sort: tuple[ImageSort, ...] = ()
    limit: int | None = None
    marker: ImageId | None = None


class ImageRepo(Protocol):
    async def create(self, image: Image) -> Image:
        """Insert the image with its tags; ``Conflict`` if its id exists."""
        ...

    async def get(self, image_id: ImageId) -> Image:
        """One image with its tags; ``NotFound`` if unknown."""
        ...

    async def list(self, query: ImageQuery) -> list[Image]:
        """The images ``query`` selects, in its order, after its marker (``NotFound``
        for a marker the viewer cannot see)."""
        ...

    async def update(self, image: Image, *, expected: ImageStatus) -> Image:
        """Write the image's metadata (name, formats, visibility, protection, minimums,
        hidden flag, owner, properties, tags) if its status is still ``expected``;
        ``InvalidState`` otherwise, ``NotFound`` if it is gone."""
        ...

    async def set_status(self, image_id: ImageId, status: ImageStatus, *,
                         expected: tuple[ImageStatus, ...] | None = None,
                         size: int | None = None, checksum: str | None = None) -> Image:
        """Move the image's status (compare-and-swap on ``expected``)."""
        ...

    async def activate(self, image_id: ImageId, data: ImageData) -> Image:
        """``saving -> active``, recording what the upload measured; ``InvalidState``
        or ``NotFound`` if the image changed or went away meanwhile."""
        ...

    async def add_tag(self, image_id: ImageId, tag: str, *, max_tags: int) -> None:
        """Tag the image (idempotent); ``OverQuota`` past ``max_tags`` tags."""
        ...

    async def remove_tag(self, image_id: ImageId, tag: str) -> None:
        """``NotFound`` if the image does not have the tag."""
        ...

    async def delete(self, image_id: ImageId) -> None:
        """Remove the image with its tags and members; ``NotFound`` if unknown."""
        ...

    async def add_member(self, member: ImageMember) -> ImageMember:
        """``Conflict`` if the project already is a member."""
        ...

    async def get_member(self, image_id: ImageId, member_id: ProjectId) -> ImageMember:
        """``NotFound`` if the project is not a member."""
        ...

    async def list_members(self, image_id: ImageId) -> builtins.list[ImageMember]:
        """The image's members, oldest first."""
        ...

    async def set_member_status(self, image_id: ImageId, member_id: ProjectId,
                                status: MemberStatus) -> ImageMember: ...

    async def remove_member(self, image_id: ImageId, member_id: ProjectId) -> None: ...
