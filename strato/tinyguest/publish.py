"""Put the tiny guest into the image service: one disk image that boots by itself, and a
kernel + ramdisk pair with an AMI-style image that boots them directly."""

from __future__ import annotations

import contextlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from strato.image.client import ImageClient
from strato.tinyguest.build import TinyGuest

__all__ = ["TINY_IMAGE", "TinyImages", "find_tiny_image", "publish_tiny_guest"]

TINY_IMAGE = "tiny"


@dataclass(frozen=True, slots=True)
class TinyImages:
    disk: str          # "tiny": qcow2, boots with syslinux
    kernel: str        # "tiny-kernel": aki
    ramdisk: str       # "tiny-ramdisk": ari
    kernel_boot: str   # "tiny-kernel-boot": qcow2 with kernel_id / ramdisk_id


async def _upload(client: ImageClient, path: Path, **fields: Any) -> str:
    image = await client.create(visibility="public", **fields)
    try:
        await client.upload(image["id"], path)
    except BaseException:
        with contextlib.suppress(Exception):
            await client.delete(image["id"])
        raise
    return str(image["id"])


async def publish_tiny_guest(client: ImageClient, guest: TinyGuest, *,
                             prefix: str = TINY_IMAGE) -> TinyImages:
    """Upload the four images (public); returns their ids."""
    disk = await _upload(client, guest.disk, name=prefix, disk_format="qcow2",
                         container_format="bare", min_disk=1,
                         os_distro="strato-tiny", hw_disk_bus="virtio")
    kernel = await _upload(client, guest.kernel, name=f"{prefix}-kernel", disk_format="aki",
                           container_format="aki")
    ramdisk = await _upload(client, guest.initrd, name=f"{prefix}-ramdisk",
                            disk_format="ari", container_format="ari")
    kernel_boot = await _upload(client, guest.disk, name=f"{prefix}-kernel-boot",
                                disk_format="qcow2", container_format="bare", min_disk=1,
                                kernel_id=kernel, ramdisk_id=ramdisk,
                                os_command_line=guest.cmdline)
    return TinyImages(disk=disk, kernel=kernel, ramdisk=ramdisk, kernel_boot=kernel_boot)


async def find_tiny_image(client: ImageClient, name: str = TINY_IMAGE) -> str | None:
    """The id of an active image called ``name``, if there is one."""
    for image in await client.list(name=name, status="active"):
        return str(image["id"])
    return None
