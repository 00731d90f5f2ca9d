"""The Linux bridge data plane against the real kernel: bridges and taps with no address,
idempotent plug and unplug, and the cleanup of devices nothing owns. Every device made
here is named from fresh UUIDs and removed at the end, whatever happens."""

from __future__ import annotations

import json
import subprocess
import uuid
from collections.abc import Iterator

import pytest

from strato.domain.devices import bridge_name, tap_mac, tap_name
from strato.network.linuxbridge import LinuxBridge

pytestmark = pytest.mark.skipif(
    subprocess.run(["id", "-u"], capture_output=True, text=True).stdout.strip() != "0",
    reason="creating network devices needs root")


def _link(name: str) -> dict[str, object] | None:
    done = subprocess.run(["ip", "-j", "-d", "addr", "show", "dev", name],
                          capture_output=True, text=True)
    if done.returncode != 0:
        return None
    found: list[dict[str, object]] = json.loads(done.stdout)
    return found[0]


@pytest.fixture
def ids() -> Iterator[dict[str, str]]:
    made = {"net": str(uuid.uuid4()), "net2": str(uuid.uuid4()), "port": str(uuid.uuid4()),
            "port2": str(uuid.uuid4())}
    yield made
    for name in (tap_name(made["port"]), tap_name(made["port2"]), bridge_name(made["net"]),
                 bridge_name(made["net2"])):
        subprocess.run(["ip", "link", "del", "dev", name], capture_output=True)


async def test_plug_makes_an_addressless_bridge_and_tap(ids: dict[str, str]) -> None:
    lb = LinuxBridge()
    mac = "fa:16:3e:12:34:56"
    tap = await lb.plug(ids["port"], ids["net"], mac, 1450)
    bridge = bridge_name(ids["net"])
    assert tap == tap_name(ids["port"]) and len(tap) <= 15 and len(bridge) <= 15
    tap_link, bridge_link = _link(tap), _link(bridge)
    assert tap_link is not None and bridge_link is not None
    assert tap_link["master"] == bridge
    assert tap_link["address"] == tap_mac(mac) == "fe:16:3e:12:34:56"
    assert (tap_link["mtu"], bridge_link["mtu"]) == (1450, 1450)
    # No address at all on the host side, IPv6 link-local included.
    assert tap_link["addr_info"] == [] and bridge_link["addr_info"] == []
    assert "UP" in bridge_link["flags"]  # type: ignore[operator]

    # Plugging again changes nothing and does not fail.
    assert await lb.plug(ids["port"], ids["net"], mac, 1450) == tap
    assert _link(tap) is not None and _link(tap)["master"] == bridge  # type: ignore[index]

    await lb.unplug(ids["port"])
    assert _link(tap) is None
    await lb.unplug(ids["port"])  # gone already: nothing to do
    await lb.delete_bridge(ids["net"])
    assert _link(bridge) is None
    await lb.delete_bridge(ids["net"])


async def test_cleanup_removes_only_what_nothing_owns(ids: dict[str, str]) -> None:
    lb = LinuxBridge()
    await lb.plug(ids["port"], ids["net"], "fa:16:3e:00:00:01", 1500)
    await lb.plug(ids["port2"], ids["net2"], "fa:16:3e:00:00:02", 1500)
    # Only the first port and network still exist: the other tap and bridge are stale.
    # (Other tests' devices may exist on this host: keep whatever is not ours here.)
    others = set(await lb.devices()) - {tap_name(ids["port"]), tap_name(ids["port2"]),
                                        bridge_name(ids["net"]), bridge_name(ids["net2"])}
    keep_ports = {ids["port"]} | {name[3:] + "-" for name in others if name.startswith("tap")}
    removed = await lb.cleanup(
        ports=[ids["port"], *(p for p in keep_ports if p != ids["port"])],
        networks=[ids["net"], *(n[3:] + "-" for n in others if n.startswith("brq"))])
    assert removed == [tap_name(ids["port2"]), bridge_name(ids["net2"])]
    assert _link(tap_name(ids["port"])) is not None
    assert _link(tap_name(ids["port2"])) is None and _link(bridge_name(ids["net2"])) is None


def test_names_come_only_from_ids() -> None:
    with pytest.raises(ValueError):
        tap_name("x; rm -rf /")
    assert bridge_name("0123456789abcdef") == "brq0123456789a"
