"""``GET /servers`` and ``/servers/detail`` filtered by ``image`` (an id, or a URL ending
in it), ``flavor`` (a flavor id) and ``ip`` (a regular expression matched, as Nova's
``re.match``, against the servers' fixed IPv4 addresses; ``ip6`` for IPv6, admins only
at 2.1)."""

from __future__ import annotations

from datetime import UTC, datetime
from urllib.parse import quote

import pytest

from strato.domain.ids import FlavorId, ImageId, ProjectId
from strato.domain.images import Image, ImageStatus
from strato.domain.resources import Flavor
from tests.api_fixtures import (
    ADMIN,
    ALICE,
    IMAGE_ID,
    Api,
    api_fixture,  # noqa: F401  (registers the "api" fixture)
)
from tests.service.test_api_server_networks import attach, create_none, make, network
from tests.service.test_api_servers import create_one

OTHER_IMAGE = "0b7a3c1e-5d2f-4e6a-8b9c-1d2e3f4a5b6c"


async def listed(api: Api, query: str, *, token: str = ALICE,
                 detail: bool = False) -> list[str]:
    path = "/v2.1/servers/detail" if detail else "/v2.1/servers"
    response = await api.request("GET", f"{path}?{query}", token=token)
    assert response.status_code == 200, response.text
    return sorted(s["name"] for s in response.json()["servers"])


@pytest.fixture
async def catalog(api: Api) -> Api:
    """A second active image and a second public flavor."""
    now = datetime.now(UTC)
    await api.db.images.create(Image(id=ImageId(OTHER_IMAGE), name="other",
                                     disk_format="qcow2", container_format="bare",
                                     visibility="public", owner=ProjectId("admin"),
                                     created_at=now, updated_at=now))
    await api.db.images.set_status(ImageId(OTHER_IMAGE), ImageStatus.ACTIVE, size=1024,
                                   checksum="1" * 32)
    await api.db.flavors.create(Flavor(id=FlavorId("7"), name="m1.other", vcpus=1,
                                       memory_mb=512, root_gb=1))
    return api


@pytest.mark.parametrize("detail", [False, True])
async def test_image_and_flavor_filters(catalog: Api, detail: bool) -> None:
    api = catalog
    await create_one(api, name="a", imageRef=IMAGE_ID, flavorRef="1")
    await create_one(api, name="b", imageRef=OTHER_IMAGE, flavorRef="1")
    await create_one(api, name="c", imageRef=OTHER_IMAGE, flavorRef="7")
    assert await listed(api, f"image={IMAGE_ID}", detail=detail) == ["a"]
    assert await listed(api, f"image={OTHER_IMAGE}", detail=detail) == ["b", "c"]
    url = quote(f"http://strato.test/image/v2/images/{OTHER_IMAGE}", safe="")
    assert await listed(api, f"image={url}", detail=detail) == ["b", "c"]
    assert await listed(api, "image=no-such-image", detail=detail) == []
    assert await listed(api, "flavor=1", detail=detail) == ["a", "b"]
    assert await listed(api, "flavor=7", detail=detail) == ["c"]
    assert await listed(api, "flavor=99", detail=detail) == []
    assert await listed(api, f"flavor=7&image={OTHER_IMAGE}", detail=detail) == ["c"]
    assert await listed(api, f"flavor=1&image={OTHER_IMAGE}&name=^b$", detail=detail) == ["b"]
    # Another project's servers never match.
    assert await listed(api, f"image={IMAGE_ID}", token="bob-token", detail=detail) == []


async def named(api: Api, name: str) -> str:
    server = await create_none(api)
    renamed = await api.request("PUT", f"/v2.1/servers/{server}",
                                json={"server": {"name": name}})
    assert renamed.status_code == 200, renamed.text
    return server


@pytest.mark.parametrize("detail", [False, True])
async def test_ip_filter_matches_fixed_ipv4_addresses(api: Api, detail: bool) -> None:
    net = await network(api)
    await make(api, "subnet", network_id=net, cidr="fd00::/64", ip_version=6)
    other = await network(api, "other", cidr="10.1.0.0/24")
    one, two, three = (await named(api, "one"), await named(api, "two"),
                       await named(api, "three"))
    await named(api, "bare")
    await attach(api, one, net, fixed_ips=[{"ip_address": "10.0.0.5"},
                                           {"ip_address": "fd00::5"}])
    await attach(api, two, net, fixed_ips=[{"ip_address": "10.0.0.50"}])
    await attach(api, three, other, fixed_ips=[{"ip_address": "10.1.0.5"}])

    def q(pattern: str) -> str:
        return "ip=" + quote(pattern, safe="")

    assert await listed(api, q("10.0.0.5"), detail=detail) == ["one", "two"]  # a prefix
    assert await listed(api, q("10\\.0\\.0\\.5$"), detail=detail) == ["one"]
    assert await listed(api, q("10.1."), detail=detail) == ["three"]
    assert await listed(api, q("10\\."), detail=detail) == ["one", "three", "two"]
    assert await listed(api, q("0.0.5"), detail=detail) == []  # matched from the start
    assert await listed(api, q("10.0.0.(5|50)$"), detail=detail) == ["one", "two"]
    assert await listed(api, q("fd00"), detail=detail) == []   # IPv4 addresses only
    assert await listed(api, q("192.168."), detail=detail) == []
    assert await listed(api, q("10.0.0.5") + "&name=two", detail=detail) == ["two"]
    # ip6 matches IPv6 addresses; at 2.1 only admins may filter by it.
    assert await listed(api, "all_tenants=1&ip6=" + quote("fd00::5"), token=ADMIN,
                        detail=detail) == ["one"]
    assert await listed(api, "all_tenants=1&ip6=10", token=ADMIN, detail=detail) == []
    assert await listed(api, "ip6=" + quote("fd00::5"), detail=detail) == [
        "bare", "one", "three", "two"]  # ignored for members


@pytest.mark.parametrize("pattern", ["(", "(a+)+$", "x" * 256, "(?=1)"])
async def test_a_bad_ip_pattern_is_a_400(api: Api, pattern: str) -> None:
    response = await api.request("GET", f"/v2.1/servers?ip={quote(pattern, safe='')}")
    assert response.status_code == 400, response.text
    assert "ip" in response.json()["badRequest"]["message"]
