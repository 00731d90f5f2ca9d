"""Client of the Compute (and minimal Image) API over httpx."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterable
from dataclasses import dataclass
from typing import Any, Self
from urllib.parse import quote

import httpx

__all__ = ["ApiError", "ApiClient", "ServerView", "segment"]


class ApiError(Exception):
    """A non-2xx answer: status, the fault name and message of Nova's error body."""

    def __init__(self, status: int, fault: str, message: str) -> None:
        super().__init__(f"{status} {fault}: {message}")
        self.status = status
        self.fault = fault
        self.message = message


@dataclass(frozen=True, slots=True)
class ServerView:
    """The fields of a server the client's callers look at."""

    id: str
    name: str
    status: str
    vm_state: str | None
    task_state: str | None
    host: str | None
    fault: dict[str, Any] | None

    @classmethod
    def from_wire(cls, data: dict[str, Any]) -> ServerView:
        return cls(id=data["id"], name=data.get("name", ""), status=data.get("status", ""),
                   vm_state=data.get("OS-EXT-STS:vm_state"),
                   task_state=data.get("OS-EXT-STS:task_state"),
                   host=data.get("OS-EXT-SRV-ATTR:host"), fault=data.get("fault"))


def segment(value: str) -> str:
    """One path segment: an id or a name can never reach another path."""
    return quote(value, safe="")


def _raise_for(resp: httpx.Response) -> None:
    if resp.is_success:
        return
    try:
        body = resp.json()
        fault, detail = next(iter(body.items()))
        message = detail.get("message", "") if isinstance(detail, dict) else str(detail)
    except (ValueError, StopIteration, AttributeError):
        fault, message = "error", resp.text
    raise ApiError(resp.status_code, fault, message)


class ApiClient:
    """``ApiClient(base_url, token)``; pass ``transport`` to talk to an in-process app."""

    def __init__(self, base_url: str, token: str, *,
                 transport: httpx.AsyncBaseTransport | None = None,
                 timeout: float = 30.0) -> None:
        self._http = httpx.AsyncClient(base_url=base_url, transport=transport,
                                       headers={"X-Auth-Token": token}, timeout=timeout)

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        await self._http.aclose()

    async def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """Send one request; raise :class:`ApiError` on a non-2xx answer."""
        resp = await self._http.request(method, path, **kwargs)
        _raise_for(resp)
        return resp

    async def create_server(self, name: str, *, image: str, flavor: str,
                            **extra: Any) -> str:
        """POST /servers; returns the new server's id."""
        body = {"server": {"name": name, "imageRef": image, "flavorRef": flavor, **extra}}
        resp = await self.request("POST", "/v2.1/servers", json=body)
        return str(resp.json()["server"]["id"])

    async def get_server(self, server_id: str) -> ServerView:
        resp = await self.request("GET", f"/v2.1/servers/{segment(server_id)}")
        return ServerView.from_wire(resp.json()["server"])

    async def list_servers(self, **params: Any) -> list[ServerView]:
        resp = await self.request("GET", "/v2.1/servers/detail", params=params)
        return [ServerView.from_wire(s) for s in resp.json()["servers"]]

    async def delete_server(self, server_id: str) -> None:
        await self.request("DELETE", f"/v2.1/servers/{segment(server_id)}")

    async def wait_for_status(self, server_id: str, statuses: set[str], *,
                              timeout: float = 60.0, interval: float = 0.1) -> ServerView:
        """Poll until the server's status is one of ``statuses`` (``DELETED`` also
        matches a server that is gone)."""
        async with asyncio.timeout(timeout):
            while True:
                try:
                    server = await self.get_server(server_id)
                except ApiError as exc:
                    if exc.status == 404 and "DELETED" in statuses:
                        return ServerView(server_id, "", "DELETED", "deleted", None, None,
                                          None)
                    raise
                if server.status in statuses:
                    return server
                await asyncio.sleep(interval)

    async def create_image(self, name: str, data: bytes, *, disk_format: str = "qcow2",
                           container_format: str = "bare", **props: Any) -> str:
        """Register an image and upload its bytes; returns the image id."""
        record = await self.create_image_record(name=name, disk_format=disk_format,
                                                container_format=container_format, **props)
        await self.upload_image_data(str(record["id"]), data)
        return str(record["id"])

    async def create_image_record(self, **fields: Any) -> dict[str, Any]:
        """``POST /image/v2/images``: a queued image without data."""
        record: dict[str, Any] = (await self.request("POST", "/image/v2/images",
                                                     json=fields)).json()
        return record

    async def upload_image_data(self, image_id: str,
                                data: bytes | AsyncIterable[bytes]) -> None:
        """``PUT /image/v2/images/{id}/file``; ``data`` may be a stream."""
        await self.request("PUT", f"/image/v2/images/{segment(image_id)}/file",
                           content=data,
                           headers={"Content-Type": "application/octet-stream"})

    async def flavors(self) -> list[dict[str, Any]]:
        resp = await self.request("GET", "/v2.1/flavors/detail")
        flavors: list[dict[str, Any]] = resp.json()["flavors"]
        return flavors
