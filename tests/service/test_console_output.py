"""``os-getConsoleOutput``: the API asks the instance's compute host over the bus."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from strato.domain.ids import InstanceId
from tests.cloud_fixtures import fake_hosts, running_cloud


async def test_console_output_comes_from_the_guests_host(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(2)) as h:
        server_id = await h.client.create_server("c1", image=h.image_id,
                                                 flavor=h.flavors["m1.tiny"])
        server = await h.client.wait_for_status(server_id, {"ACTIVE"})
        driver = h.driver(server.host or "")
        await driver.reboot(InstanceId(server_id))  # a second console line

        async def console(body: object) -> tuple[int, dict[str, Any]]:
            resp = await h.client._http.post(f"/v2.1/servers/{server_id}/action", json=body)
            return resp.status_code, resp.json()

        status, body = await console({"os-getConsoleOutput": {}})
        assert status == 200
        lines = str(body["output"]).splitlines()
        assert lines == [f"fake-guest: uuid={server_id} booted on {server.host}",
                         "fake-guest: soft reboot"]
        # Nova's tail: the last ``length`` pieces between newlines, the empty one after
        # the final newline included.
        for length in (2, "2"):
            assert await console({"os-getConsoleOutput": {"length": length}}) == (
                200, {"output": "fake-guest: soft reboot\n"})
        assert await console({"os-getConsoleOutput": {"length": 1}}) == (200, {"output": ""})
        assert (await console({"os-getConsoleOutput": {"length": -1}}))[1]["output"] == \
            body["output"]
        assert await console({"os-getConsoleOutput": {"length": 0}}) == (200, {"output": ""})

        refused: tuple[object, ...] = ({"os-getConsoleOutput": {"length": "x"}},
                                       {"os-getConsoleOutput": {"length": -2}},
                                       {"os-getConsoleOutput": {"length": True}},
                                       {"os-getConsoleOutput": {"lines": 3}},
                                       {"os-getConsoleOutput": {}, "reboot": {}},
                                       {"no-such-action": {}}, [])
        for bad in refused:
            status, fault = await console(bad)
            assert status == 400, bad
            assert fault["badRequest"]["code"] == 400


async def test_console_output_of_a_server_without_a_host_is_a_conflict(tmp_path: Path) -> None:
    async with running_cloud(tmp_path, fake_hosts(1, memory_mb=256)) as h:
        server_id = await h.client.create_server("too-big", image=h.image_id,
                                                 flavor=h.flavors["m1.small"])
        await h.client.wait_for_status(server_id, {"ERROR"})
        resp = await h.client._http.post(f"/v2.1/servers/{server_id}/action",
                                         json={"os-getConsoleOutput": {}})
        assert resp.status_code == 409
        assert "conflictingRequest" in resp.json()
        resp = await h.client._http.post("/v2.1/servers/nope/action",
                                         json={"os-getConsoleOutput": {}})
        assert resp.status_code == 404
