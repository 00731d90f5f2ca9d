"""A client of strato's Image API (the Glance v2 subset served under ``<api>/image``).

Image data never sits in memory whole: uploads read the source chunk by chunk and stream
it as the request body, and downloads stream the response into a temporary file next to
the destination, hashing as they go, and rename it into place only once the SHA-512
(Glance's ``os_hash_value``) matched. Computes on other hosts fetch images through this
client with the service token; the CLI's ``strato image import`` uploads through it.

Every id goes into a path as one escaped segment (``segment``): an id like ``../x?y``
can never reach another route.

HTTP failures become the domain's errors (404 ``NotFound``, 409 ``Conflict``, 400 and
413 ``Invalid``, 401 and 403 ``Forbidden``, 5xx and unreachable ``Unavailable``), so a
caller handles one error tree whatever the transport.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import os
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from typing import Any, BinaryIO

import httpx

from strato.client.compute import segment
from strato.domain.errors import (
    Conflict,
    Forbidden,
    Invalid,
    NotFound,
    StratoError,
    Unavailable,
)
from strato.domain.ids import ImageId, ProjectId
from strato.domain.images import Image, ImageStatus

__all__ = ["CHUNK_SIZE", "ImageClient", "ImageServiceSource", "file_chunks",
           "image_from_record"]

# One thread hop and one socket write per mebibyte: large enough that per-chunk costs
# vanish at disk speed, small enough that memory stays flat.
CHUNK_SIZE = 1024 * 1024

_ERRORS: dict[int, type[StratoError]] = {
    400: Invalid, 401: Forbidden, 403: Forbidden, 404: NotFound, 409: Conflict,
    413: Invalid, 415: Invalid,
}

ImageSource = str | os.PathLike[str] | AsyncIterator[bytes]


class ImageClient:
    """Async client of the Image API at ``<base_url>/image``.

    ``base_url``: the strato API, e.g. ``http://127.0.0.1:8774`` (without ``/image``).
    ``token``: sent as ``X-Auth-Token`` (the admin token, or the service token of a
    compute). ``transport``: an httpx transport, e.g. ``httpx.ASGITransport(app)`` to
    talk to an in-process API. ``timeout``: seconds any one network operation may
    take (a large upload may wait that long for the server's final fsync).
    """

    def __init__(self, base_url: str, token: str, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 300.0) -> None:
        self.base_url = base_url.rstrip("/") + "/image"
        self._http = httpx.AsyncClient(base_url=self.base_url, transport=transport,
                                       headers={"X-Auth-Token": token},
                                       timeout=httpx.Timeout(timeout, connect=10.0))

    async def __aenter__(self) -> ImageClient:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        """Close the connection pool."""
        await self._http.aclose()

    async def create(self, **fields: Any) -> dict[str, Any]:
        """``POST /v2/images``: register an image (``queued``); returns its record.
        ``fields`` are Glance's (``name``, ``disk_format``, ``container_format``,
        ``visibility``, ``min_disk``, ``min_ram``, ``tags``, extra string properties)."""
        return await self._json("POST", "/v2/images", json=fields)

    async def get(self, image_id: str) -> dict[str, Any]:
        """``GET /v2/images/{id}``: the image's record."""
        return await self._json("GET", f"/v2/images/{segment(image_id)}")

    async def list(self, **filters: Any) -> list[dict[str, Any]]:
        """``GET /v2/images`` with Glance's filters (``name``, ``status``,
        ``visibility``, ``disk_format``, ``tag``, ``limit`` ...), following ``next``
        links until the last page."""
        images: list[dict[str, Any]] = []
        url: str | None = "/v2/images"
        params: dict[str, Any] | None = filters
        while url is not None:
            page = await self._json("GET", url, params=params)
            images.extend(page["images"])
            url, params = page.get("next"), None  # "next" carries the filters along
        return images

    async def delete(self, image_id: str) -> None:
        """``DELETE /v2/images/{id}``."""
        await self._send("DELETE", f"/v2/images/{segment(image_id)}")

    async def upload(self, image_id: str, source: ImageSource, size: int | None = None
                     ) -> None:
        """``PUT /v2/images/{id}/file``: stream the image's data.

        ``source``: a file path (read in :data:`CHUNK_SIZE` chunks) or an async iterator
        of bytes. ``size``: the byte count, sent as ``Content-Length`` (a path's size
        is taken from the file); without it an iterator goes out chunked.
        """
        if not isinstance(source, str | os.PathLike):
            await self._put_data(image_id, source, size)
            return
        path = Path(source)
        size = (await asyncio.to_thread(path.stat)).st_size if size is None else size
        # aclosing: the file is closed even when the server refuses the data early.
        async with contextlib.aclosing(file_chunks(path)) as chunks:
            await self._put_data(image_id, chunks, size)

    async def _put_data(self, image_id: str, chunks: AsyncIterator[bytes],
                        size: int | None) -> None:
        headers = {"Content-Type": "application/octet-stream"}
        if size is not None:
            headers["Content-Length"] = str(size)
        await self._send("PUT", f"/v2/images/{segment(image_id)}/file", content=chunks,
                         headers=headers)

    async def download_to(self, image_id: str, path: str | os.PathLike[str], *,
                          expected_sha512: str | None = None) -> dict[str, Any]:
        """Download the image's data to ``path``; returns the image's record.

        The data streams into a temporary file beside ``path`` and is renamed into
        place once complete. Its SHA-512 is checked against ``expected_sha512``, else
        the image's ``os_hash_value`` (when ``os_hash_algo`` is sha512), and its length
        against ``size``; on a mismatch the partial file is removed and ``Invalid``
        raised. ``Conflict`` if the image has no data yet.
        """
        image = await self.get(image_id)
        expected = expected_sha512 or _sha512_of(image)
        dest = Path(path)
        temp = dest.with_name(f".{dest.name}.{uuid.uuid4().hex}.part")
        try:
            size, digest = await self._stream_to(image_id, temp)
            _verify(image_id, size, digest, image.get("size"), expected)
            await asyncio.to_thread(os.replace, temp, dest)
        finally:
            await asyncio.to_thread(temp.unlink, missing_ok=True)
        return image

    async def _stream_to(self, image_id: str, temp: Path) -> tuple[int, str]:
        request = self._http.build_request("GET", f"/v2/images/{segment(image_id)}/file")
        response = await self._send_request(request, stream=True)
        try:
            if response.status_code == 204:
                raise Conflict(f"Image {image_id} has no data yet.")
            return await _write_hashed(response.aiter_bytes(CHUNK_SIZE), temp)
        finally:
            await response.aclose()

    async def _json(self, method: str, url: str, **kwargs: Any) -> dict[str, Any]:
        body: dict[str, Any] = (await self._send(method, url, **kwargs)).json()
        return body

    async def _send(self, method: str, url: str, **kwargs: Any) -> httpx.Response:
        return await self._send_request(self._http.build_request(method, url, **kwargs))

    async def _send_request(self, request: httpx.Request, *,
                            stream: bool = False) -> httpx.Response:
        try:
            response = await self._http.send(request, stream=stream)
        except httpx.TransportError as exc:
            raise Unavailable(f"image API at {self.base_url}: {exc!r}") from exc
        if response.is_error:
            await response.aread()
            await response.aclose()
            raise _error_for(response)
        return response


async def file_chunks(path: Path, chunk_size: int = CHUNK_SIZE) -> AsyncGenerator[bytes, None]:
    """The file's bytes, ``chunk_size`` at a time, read off the event loop."""
    handle = await asyncio.to_thread(path.open, "rb")
    try:
        while chunk := await asyncio.to_thread(handle.read, chunk_size):
            yield chunk
    finally:
        await asyncio.to_thread(handle.close)


async def _write_hashed(chunks: AsyncIterator[bytes], temp: Path) -> tuple[int, str]:
    """Write ``chunks`` to ``temp`` (fsynced); return the size and SHA-512 hex digest."""
    handle = await asyncio.to_thread(temp.open, "wb")
    writer = _HashingWriter(handle)
    try:
        async for chunk in chunks:
            await writer.start(chunk)
        await writer.settle()
        await asyncio.to_thread(_sync, handle)
    finally:
        await writer.settle_quietly()
        await asyncio.to_thread(handle.close)
    return writer.size, writer.sha512.hexdigest()


class _HashingWriter:
    """Hashes and writes one chunk in a worker thread while the event loop receives
    the next one (hashlib and file writes release the GIL), so a download costs about
    the slower of the network and the disk rather than their sum."""

    def __init__(self, handle: BinaryIO) -> None:
        self.handle = handle
        self.sha512 = hashlib.sha512()
        self.size = 0
        self._job: asyncio.Future[None] | None = None

    async def start(self, chunk: bytes) -> None:
        """Wait for the chunk in flight (the digest must see the data in order), then
        hand ``chunk`` to a thread."""
        await self.settle()
        self._job = asyncio.get_running_loop().run_in_executor(None, self._write, chunk)
        self.size += len(chunk)

    async def settle(self) -> None:
        """Wait for the chunk in flight; re-raise its error (an OSError of the write)."""
        if self._job is not None:
            # Forgotten only once done: if this wait is cancelled, settle_quietly()
            # still waits for the thread before the file is closed.
            await self._job
            self._job = None

    async def settle_quietly(self) -> None:
        """After a failure: wait until no thread uses the file, so it can be closed."""
        if self._job is not None:
            await asyncio.wait([self._job])
            self._job = None

    def _write(self, data: bytes) -> None:
        self.sha512.update(data)
        self.handle.write(data)


def _sync(handle: BinaryIO) -> None:
    handle.flush()
    os.fsync(handle.fileno())


def _sha512_of(image: dict[str, Any]) -> str | None:
    if image.get("os_hash_algo") == "sha512":
        value = image.get("os_hash_value")
        return str(value) if value else None
    return None


def _verify(image_id: str, size: int, digest: str, expected_size: int | None,
            expected_sha512: str | None) -> None:
    if expected_size is not None and size != expected_size:
        raise Invalid(f"Image {image_id}: downloaded {size} bytes, expected "
                      f"{expected_size}.")
    if expected_sha512 is not None and digest != expected_sha512.lower():
        raise Invalid(f"Image {image_id}: SHA-512 mismatch (got {digest}, expected "
                      f"{expected_sha512}).")


def _error_for(response: httpx.Response) -> StratoError:
    """The domain error for a non-2xx answer, with the server's message."""
    status = response.status_code
    cls = _ERRORS.get(status, Unavailable if status >= 500 else StratoError)
    return cls(f"{status} {_message(response)}")


def _message(response: httpx.Response) -> str:
    """The message of an error body: Nova's ``{"fault": {"message"}}``, Glance's
    ``{"title", "description"}`` or ``{"message"}``, else the text itself."""
    try:
        body = response.json()
    except ValueError:
        return response.text.strip()[:500] or response.reason_phrase
    if isinstance(body, dict):
        if len(body) == 1 and isinstance(inner := next(iter(body.values())), dict):
            body = inner
        for key in ("message", "description", "title", "detail"):
            if isinstance(body.get(key), str):
                return str(body[key])
    return str(body)[:500]


# The core attributes of Glance's image JSON; every other string-valued key is an extra
# property (Glance puts them at the top level).
_CORE = frozenset({"id", "name", "status", "visibility", "protected", "os_hidden", "tags",
                   "disk_format", "container_format", "size", "virtual_size", "checksum",
                   "os_hash_algo", "os_hash_value", "min_disk", "min_ram", "owner",
                   "created_at", "updated_at", "self", "file", "schema", "direct_url",
                   "locations", "stores"})


def image_from_record(record: dict[str, Any]) -> Image:
    """The domain :class:`Image` from the Image API's JSON for one image."""
    return Image(
        id=ImageId(record["id"]), name=record.get("name"),
        status=ImageStatus(record.get("status", "queued")),
        disk_format=record.get("disk_format"), container_format=record.get("container_format"),
        size=record.get("size"), virtual_size=record.get("virtual_size"),
        checksum=record.get("checksum"), os_hash_algo=record.get("os_hash_algo"),
        os_hash_value=record.get("os_hash_value"), min_disk=record.get("min_disk") or 0,
        min_ram=record.get("min_ram") or 0, visibility=record.get("visibility", "shared"),
        protected=bool(record.get("protected")), os_hidden=bool(record.get("os_hidden")),
        owner=ProjectId(record["owner"]) if record.get("owner") else None,
        properties={k: v for k, v in record.items() if k not in _CORE and isinstance(v, str)},
        tags=tuple(sorted(record.get("tags") or ())))


class ImageServiceSource:
    """The image service as a virt driver's :class:`~strato.virt.driver.ImageSource`:
    a compute host reads records and streams data through the Image API."""

    def __init__(self, client: ImageClient) -> None:
        self.client = client

    async def get(self, image_id: ImageId) -> Image:
        return image_from_record(await self.client.get(image_id))

    async def download(self, image_id: ImageId, dest: Path) -> None:
        await self.client.download_to(image_id, dest)

    async def aclose(self) -> None:
        await self.client.aclose()
