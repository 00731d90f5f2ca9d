"""Networks for real: three tiny guests (libvirtd + QEMU under TCG) on one strato network,
with the compute's Linux bridge and taps, its nftables security groups, and the DHCP
agent's dnsmasq in its namespace; everything checked from the guests' own consoles.

Traffic stays between the guests and the DHCP namespace: the bridge has no address and
the root namespace never sends to the (private) guest network.
"""

from __future__ import annotations

import asyncio
import base64
import os
from pathlib import Path
from typing import Any

import pytest

from strato.domain.devices import bridge_name, tap_name
from strato.network.dhcp import namespace_name
from strato.tinyguest import TinyGuest

# ruff: noqa: F811
from tests.libvirt_fixtures import (  # noqa: F401
    LvCloud,
    Sandbox,
    libvirt_cloud,
    namespaces,
    network_devices,
    sandbox,
    tiny_guest,
)

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

V2 = "/networking/v2.0"
CIDR = "10.77.0.0/24"
IP_A, IP_C = "10.77.0.10", "10.77.0.12"


async def _post(lv: LvCloud, path: str, body: dict[str, Any]) -> dict[str, Any]:
    resp = await lv.client.request("POST", f"{V2}/{path}", json=body)
    assert resp.status_code == 201, resp.text
    made: dict[str, Any] = next(iter(resp.json().values()))
    return made


async def _ports(lv: LvCloud, **params: str) -> list[dict[str, Any]]:
    ports: list[dict[str, Any]] = (await lv.client.request(
        "GET", f"{V2}/ports", params=params)).json()["ports"]
    return ports


def _pinger(*targets: str) -> str:
    """User data for the first guest: ping each target once a round, forever, and say
    on the console what came back (busybox ping gives each run its own ICMP id, so the
    firewall sees every round as new traffic)."""
    return (
        "#!/bin/sh\n"
        "(\n"
        "  while :; do\n"
        f"    for t in {' '.join(targets)}; do\n"
        '      r=$(ping -c 1 -W 1 "$t" 2>/dev/null | grep "bytes from")\n'
        '      if [ -n "$r" ]; then echo "strato-test: $r"; '
        'else echo "strato-test: no reply from $t"; fi\n'
        "    done\n"
        "    sleep 0.5\n"
        "  done\n"
        ") >/dev/console 2>&1 &\n")


async def _wait(predicate: Any, timeout: float = 60.0, what: str = "") -> None:
    async with asyncio.timeout(timeout):
        while not await predicate():
            await asyncio.sleep(0.25)


async def _console_line(lv: LvCloud, server_id: str, marker: str, *, after: int = 0,
                        timeout: float = 120.0) -> str:
    """``lv.console_line``, showing the console when the line never comes."""
    try:
        return await lv.console_line(server_id, marker, timeout=timeout, after=after)
    except TimeoutError:
        console = await lv.driver.console_output(server_id)
        raise AssertionError(f"no {marker!r} on the console of {server_id}:\n"
                             f"{console[-3000:]}") from None


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return True


def _dnsmasq_pid(box: Sandbox, network_id: str) -> int | None:
    try:
        pid = int((box.dhcp_dir / network_id / "pid").read_text().strip())
        os.kill(pid, 0)
    except (OSError, ValueError):
        return None
    return pid


async def test_guests_lease_their_ports_addresses_reach_each_other_and_groups_hold(
        tmp_path: Path, sandbox: Sandbox, tiny_guest: TinyGuest) -> None:
    async with libvirt_cloud(tmp_path, sandbox) as lv:
        image = await lv.upload("tiny", tiny_guest.disk, "qcow2")
        flavor = await lv.flavor("lv.net")
        net = await _post(lv, "networks", {"network": {"name": "lan"}})
        await _post(lv, "subnets", {"subnet": {"network_id": net["id"], "cidr": CIDR,
                                               "ip_version": 4}})
        quiet = await _post(lv, "security-groups", {"security_group": {"name": "quiet"}})

        # The DHCP agent serves the network as soon as it has a subnet.
        async def serving() -> bool:
            return _dnsmasq_pid(sandbox, net["id"]) is not None
        await _wait(serving, 30)
        dnsmasq = _dnsmasq_pid(sandbox, net["id"])
        assert namespace_name(net["id"]) in namespaces()

        async def boot(name: str, **extra: Any) -> str:
            return await lv.client.create_server(name, image=image, flavor=flavor,
                                                 config_drive=True, **extra)

        # B takes whatever address IPAM gives it; A's user data needs it, so B first.
        b = await boot("guest-b", networks=[{"uuid": net["id"]}])

        async def b_has_port() -> bool:
            return bool(await _ports(lv, device_id=b))
        await _wait(b_has_port, 60)
        [port_b] = await _ports(lv, device_id=b)
        ip_b = port_b["fixed_ips"][0]["ip_address"]
        # C is in a group that admits no ingress at all.
        c = await boot("guest-c", networks=[{"uuid": net["id"], "fixed_ip": IP_C}],
                       security_groups=[{"name": "quiet"}])
        user_data = _pinger(ip_b, IP_C)
        a = await boot("guest-a", networks=[{"uuid": net["id"], "fixed_ip": IP_A}],
                       user_data=base64.b64encode(user_data.encode()).decode())
        for server_id in (a, b, c):
            server = await lv.client.wait_for_status(server_id, {"ACTIVE", "ERROR"},
                                                     timeout=180)
            assert server.status == "ACTIVE", server.fault

        # Each guest leased exactly the address strato allocated to its port.
        for server_id, ip in ((a, IP_A), (b, ip_b), (c, IP_C)):
            [port] = await _ports(lv, device_id=server_id)
            assert port["fixed_ips"][0]["ip_address"] == ip and port["status"] == "ACTIVE"
            console = await _console_line(lv, server_id, "strato-guest: eth0 ")
            assert f"strato-guest: eth0 address={ip}/24\n" in console.replace("\r", "")
        # Those leases came from the dnsmasq that ran before the ports existed.
        assert _dnsmasq_pid(sandbox, net["id"]) == dnsmasq

        # A reaches B (the default group admits its own members) and not C.
        console = await lv.console_line(a, f"strato-test: 64 bytes from {ip_b}", timeout=120)
        console = await lv.console_line(a, f"no reply from {IP_C}", timeout=60)
        assert f"bytes from {IP_C}" not in console

        # Removing the default group's ingress rules stops A -> B.
        rules = (await lv.client.request("GET", f"{V2}/security-group-rules", params={
            "security_group_id": port_b["security_groups"][0], "direction": "ingress"})
        ).json()["security_group_rules"]
        assert rules
        for rule in rules:
            resp = await lv.client.request("DELETE", f"{V2}/security-group-rules/{rule['id']}")
            assert resp.status_code == 204, resp.text
        mark = len(await lv.driver.console_output(a))
        console = await lv.console_line(a, f"no reply from {ip_b}", timeout=60, after=mark)
        settled = len(console)
        # Two more rounds: still nothing from B.
        for _ in range(2):
            console = await lv.console_line(a, f"no reply from {IP_C}", timeout=60,
                                            after=len(console))
        assert f"bytes from {ip_b}" not in console[settled:]

        # Deleting the servers and the network leaves nothing behind.
        ports = [p["id"] for p in await _ports(lv)]
        for server_id in (a, b, c):
            await lv.client.delete_server(server_id)
        for server_id in (a, b, c):
            await lv.client.wait_for_status(server_id, {"DELETED"}, timeout=90)
        resp = await lv.client.request("DELETE", f"{V2}/networks/{net['id']}")
        assert resp.status_code == 204, resp.text
        resp = await lv.client.request("DELETE", f"{V2}/security-groups/{quiet['id']}")
        assert resp.status_code == 204, resp.text

        ours = {bridge_name(net["id"])} | {tap_name(p) for p in ports} | {
            "dhp" + net["id"][:11]}

        async def all_gone() -> bool:
            return (not ours & network_devices()
                    and namespace_name(net["id"]) not in namespaces()
                    and _dnsmasq_pid(sandbox, net["id"]) is None)
        await _wait(all_gone, 30)
        assert dnsmasq is not None and not _alive(dnsmasq)
        # No port row at all (the API's list is per project; the repository's is not).
        assert await lv.cloud.db.networks.list_ports(viewer=None) == []
