"""strato.image.client.ImageClient puts image ids into its paths as single escaped
segments: a hostile id (``../x?y``, from an image property or a user) can never reach
another route or add a query."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from strato.domain.errors import NotFound
from strato.image.client import ImageClient

HOSTILE = "../x?y"


def _names(directory: Path) -> list[str]:
    return [p.name for p in directory.iterdir()]


async def _nothing() -> AsyncIterator[bytes]:
    yield b""


async def test_image_ids_are_one_path_segment_each(tmp_path: Path) -> None:
    seen: list[tuple[str, bytes]] = []

    def answer(request: httpx.Request) -> httpx.Response:
        seen.append((request.method, request.url.raw_path))
        if request.method == "GET" and not request.url.raw_path.endswith(b"/file"):
            return httpx.Response(200, json={"id": HOSTILE, "status": "active"})
        return httpx.Response(404, json={"code": "404 Not Found", "title": "Not Found",
                                         "message": "no"})

    async with ImageClient("http://strato", "t",
                           transport=httpx.MockTransport(answer)) as client:
        await client.get(HOSTILE)
        with pytest.raises(NotFound):
            await client.delete("../../v2.1/servers")
        with pytest.raises(NotFound):
            await client.upload("a/b#c", _nothing(), size=0)
        with pytest.raises(NotFound):
            await client.download_to(HOSTILE, tmp_path / "base")
    assert seen == [
        ("GET", b"/image/v2/images/..%2Fx%3Fy"),
        ("DELETE", b"/image/v2/images/..%2F..%2Fv2.1%2Fservers"),
        ("PUT", b"/image/v2/images/a%2Fb%23c/file"),
        ("GET", b"/image/v2/images/..%2Fx%3Fy"),
        ("GET", b"/image/v2/images/..%2Fx%3Fy/file"),
    ]
    assert _names(tmp_path) == []  # no partial download left
