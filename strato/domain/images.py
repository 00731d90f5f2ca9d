"""Images, as the compute path sees them (the image service owns the full record)."""

from __future__ import annotations

import enum
from dataclasses import dataclass, field
from datetime import datetime

from strato.domain.ids import ImageId, ProjectId

__all__ = ["DISK_FORMATS", "CONTAINER_FORMATS", "Image", "ImageStatus"]

DISK_FORMATS = frozenset({"raw", "qcow2", "iso", "aki", "ari", "ami", "vmdk", "vdi", "vhd",
                          "vhdx"})
CONTAINER_FORMATS = frozenset({"bare", "ovf", "aki", "ari", "ami", "ova", "docker",
                               "compressed"})


class ImageStatus(enum.StrEnum):
    QUEUED = "queued"
    SAVING = "saving"
    ACTIVE = "active"
    KILLED = "killed"
    DELETED = "deleted"
    DEACTIVATED = "deactivated"


@dataclass(frozen=True, slots=True, kw_only=True)
class Image:
    """One image's metadata."""

    id: ImageId
    name: str | None
    status: ImageStatus = ImageStatus.QUEUED
    disk_format: str | None = None
    container_format: str | None = None
    size: int | None = None
    virtual_size: int | None = None
    checksum: str | None = None
    min_disk: int = 0
    min_ram: int = 0
    visibility: str = "shared"
    protected: bool = False
    owner: ProjectId | None = None
    properties: dict[str, str] = field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None
