"""The whole public API as one client: Compute, Image, Network and the caller's own
Identity calls. Answers are the API's JSON objects (dicts), as documented by the
OpenStack api-refs; only paging and errors are interpreted here.

The dashboard renders these objects as they come; the benchmarks and the tests use them
to set things up. Every call carries the token the client was made with, so a client can
never see more than that token's user may.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qs, urlsplit

import httpx

from strato.client.compute import ApiClient, ApiError, segment

__all__ = ["ApiError", "CloudClient", "Page"]

Json = dict[str, Any]


@dataclass(frozen=True, slots=True)
class Page:
    """One page of a listing and the marker of the next one (None on the last page)."""

    items: list[Json]
    next_marker: str | None


def _next_marker(links: list[Json] | None) -> str | None:
    for link in links or ():
        if link.get("rel") == "next":
            markers = parse_qs(urlsplit(str(link.get("href", ""))).query).get("marker")
            if markers:
                return markers[0]
    return None


class CloudClient(ApiClient):
    """``CloudClient(base_url, token, transport=...)``: every method raises
    :class:`ApiError` on a non-2xx answer."""

    async def _json(self, method: str, path: str, **kwargs: Any) -> Json:
        resp = await self.request(method, path, **kwargs)
        body: Json = resp.json()
        return body

    # -- identity (the caller's own token) -------------------------------------------

    async def token_info(self, token: str) -> Json:
        """``GET /identity/v3/auth/tokens`` for ``token``: its user, project, roles."""
        body = await self._json("GET", "/identity/v3/auth/tokens",
                                params={"nocatalog": "1"},
                                headers={"X-Subject-Token": token})
        info: Json = body["token"]
        return info

    async def my_projects(self) -> list[Json]:
        """``GET /identity/v3/auth/projects``: the projects the caller may scope to."""
        projects: list[Json] = (await self._json("GET", "/identity/v3/auth/projects"))[
            "projects"]
        return projects

    async def revoke_token(self, token: str) -> None:
        await self.request("DELETE", "/identity/v3/auth/tokens",
                           headers={"X-Subject-Token": token})

    # -- servers ----------------------------------------------------------------------

    async def servers_page(self, *, limit: int, marker: str | None = None,
                           status: str | None = None) -> Page:
        """``GET /v2.1/servers/detail``, one page, newest first."""
        params: dict[str, str | int] = {"limit": limit}
        if marker:
            params["marker"] = marker
        if status:
            params["status"] = status
        body = await self._json("GET", "/v2.1/servers/detail", params=params)
        return Page(body["servers"], _next_marker(body.get("servers_links")))

    async def server(self, server_id: str) -> Json:
        server: Json = (await self._json("GET", f"/v2.1/servers/{segment(server_id)}"))["server"]
        return server

    async def create_servers(self, body: Json) -> Json:
        """``POST /v2.1/servers`` with ``{"server": body}``; the answer's ``server``."""
        server: Json = (await self._json("POST", "/v2.1/servers",
                                         json={"server": body}))["server"]
        return server

    async def server_action(self, server_id: str, action: str,
                            args: Any = None) -> httpx.Response:
        """``POST /v2.1/servers/{id}/action`` with ``{action: args}``."""
        return await self.request("POST", f"/v2.1/servers/{segment(server_id)}/action",
                                  json={action: args})

    async def console_output(self, server_id: str, length: int | None = None) -> str:
        args: Json = {} if length is None else {"length": length}
        resp = await self.server_action(server_id, "os-getConsoleOutput", args)
        return str(resp.json()["output"])

    async def instance_actions(self, server_id: str) -> list[Json]:
        actions: list[Json] = (await self._json(
            "GET", f"/v2.1/servers/{segment(server_id)}/os-instance-actions"))["instanceActions"]
        return actions

    async def instance_action(self, server_id: str, request_id: str) -> Json:
        action: Json = (await self._json(
            "GET",
            f"/v2.1/servers/{segment(server_id)}/os-instance-actions/{segment(request_id)}",
            headers={"X-Strato-Action-Extras": "1"}))["instanceAction"]
        return action

    # -- flavors, limits, zones, key pairs --------------------------------------------

    async def limits(self) -> Json:
        """The ``absolute`` limits and usage of the caller's project."""
        absolute: Json = (await self._json("GET", "/v2.1/limits"))["limits"]["absolute"]
        return absolute

    async def availability_zones(self) -> list[Json]:
        zones: list[Json] = (await self._json("GET", "/v2.1/os-availability-zone"))[
            "availabilityZoneInfo"]
        return zones

    async def keypairs(self) -> list[Json]:
        pairs = (await self._json("GET", "/v2.1/os-keypairs"))["keypairs"]
        return [p["keypair"] for p in pairs]

    async def create_keypair(self, name: str, public_key: str | None = None) -> Json:
        """A new key pair; without ``public_key`` the API makes one and returns its
        ``private_key`` (once)."""
        body: Json = {"name": name}
        if public_key is not None:
            body["public_key"] = public_key
        pair: Json = (await self._json("POST", "/v2.1/os-keypairs",
                                       json={"keypair": body}))["keypair"]
        return pair

    async def delete_keypair(self, name: str) -> None:
        await self.request("DELETE", f"/v2.1/os-keypairs/{segment(name)}")

    # -- admin: hypervisors and services ----------------------------------------------

    async def hypervisors(self) -> list[Json]:
        found: list[Json] = (await self._json("GET", "/v2.1/os-hypervisors/detail"))[
            "hypervisors"]
        return found

    async def services(self) -> list[Json]:
        found: list[Json] = (await self._json("GET", "/v2.1/os-services"))["services"]
        return found

    # -- images -----------------------------------------------------------------------

    async def images(self, **params: Any) -> list[Json]:
        """``GET /image/v2/images``, every page."""
        found: list[Json] = []
        path: str | None = "/image/v2/images"
        query: dict[str, Any] | None = {"limit": 500, **params}
        while path:
            body = await self._json("GET", path, params=query)
            found.extend(body["images"])
            path, query = body.get("next"), None
            if path and path.startswith("/v2/"):
                path = "/image" + path
        return found

    async def image(self, image_id: str) -> Json:
        return await self._json("GET", f"/image/v2/images/{segment(image_id)}")

    async def delete_image(self, image_id: str) -> None:
        await self.request("DELETE", f"/image/v2/images/{segment(image_id)}")

    # -- networks ---------------------------------------------------------------------

    async def networks(self) -> list[Json]:
        found: list[Json] = (await self._json("GET", "/networking/v2.0/networks"))[
            "networks"]
        return found

    async def create_network(self, **fields: Any) -> Json:
        network: Json = (await self._json("POST", "/networking/v2.0/networks",
                                          json={"network": fields}))["network"]
        return network

    async def delete_network(self, network_id: str) -> None:
        await self.request("DELETE", f"/networking/v2.0/networks/{segment(network_id)}")

    async def create_subnet(self, **fields: Any) -> Json:
        subnet: Json = (await self._json("POST", "/networking/v2.0/subnets",
                                         json={"subnet": fields}))["subnet"]
        return subnet

    async def subnets(self) -> list[Json]:
        found: list[Json] = (await self._json("GET", "/networking/v2.0/subnets"))["subnets"]
        return found

    async def security_groups(self) -> list[Json]:
        found: list[Json] = (await self._json("GET", "/networking/v2.0/security-groups"))[
            "security_groups"]
        return found

