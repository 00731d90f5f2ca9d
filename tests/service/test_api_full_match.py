"""Every pattern that validates input matches the whole value: a trailing newline
(which Python's ``$`` lets through) is a 400 in the API's own fault format, and nothing
is created. A MAC with a newline once reached dnsmasq's hosts file and the nft ruleset
(and killed the DHCP agent)."""

from __future__ import annotations

from typing import Any

import pytest

from tests.api_fixtures import (
    ADMIN,
    IMAGE_ID,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)

V2 = "/networking/v2.0"


async def test_a_mac_with_a_trailing_newline_is_refused(api: Api) -> None:
    net = (await api.request("POST", f"{V2}/networks", json={"network": {"name": "n"}})
           ).json()["network"]
    response = await api.request("POST", f"{V2}/ports", json={"port": {
        "network_id": net["id"], "mac_address": "fa:16:3e:00:00:01\n"}})
    assert response.status_code == 400, response.text
    assert response.json()["NeutronError"]["type"] == "InvalidInput"
    ports = (await api.request("GET", f"{V2}/ports", token=ADMIN)).json()["ports"]
    assert ports == []


# (method, path, token, body): each carries one value that is valid but for its "\n".
CASES: list[tuple[str, str, str, dict[str, Any]]] = [
    ("POST", "/v2.1/flavors", ADMIN,
     {"flavor": {"name": "f", "id": "small\n", "ram": 64, "vcpus": 1, "disk": 1}}),
    ("POST", "/v2.1/servers", "alice-token",
     {"server": {"name": "s", "imageRef": IMAGE_ID, "flavorRef": "1",
                 "metadata": {"key\n": "v"}}}),
    ("PUT", "/v2.1/os-quota-sets/project-a", ADMIN, {"quota_set": {"instances": "5\n"}}),
    ("GET", "/v2.1/os-aggregates/1%0A", ADMIN, {}),
]


@pytest.mark.parametrize(("method", "path", "token", "body"), CASES,
                         ids=["flavor-id", "metadata-key", "quota-digits", "aggregate-id"])
async def test_a_trailing_newline_is_refused(api: Api, method: str, path: str, token: str,
                                             body: dict[str, Any]) -> None:
    kwargs: dict[str, Any] = {"json": body} if body else {}
    response = await api.request(method, path, token=token, **kwargs)
    assert response.status_code == 400, response.text
    assert "badRequest" in response.json(), response.text
