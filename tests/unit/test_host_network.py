"""``LinuxBridgeHost``: what a compute runs on its host when ports are plugged, unplugged
and changed, with the ``ip`` commands and nftables rulesets recorded instead of run
(tests/integration/test_linuxbridge.py and test_firewall.py run them for real)."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from strato.domain.context import admin_context
from strato.domain.ids import HostName
from strato.domain.networks import HostPorts, PortSecurity, Vif, VifSubnet
from strato.network.firewall import Firewall, PortFilter
from strato.network.host import LinuxBridgeHost
from strato.network.linuxbridge import LinuxBridge

NET = "5b680dcf-a7aa-4e4e-9d0c-111111111111"
PORT = "b4c384e6-7711-4f1a-8e22-222222222222"
STALE = "e63ab158-7600-4abc-9def-333333333333"


class FakeIp:
    """``ip`` as a runner: devices appear and disappear as the commands say."""

    def __init__(self, devices: Sequence[str] = ()) -> None:
        self.devices = set(devices)
        self.commands: list[tuple[str, ...]] = []

    async def __call__(self, *argv: str) -> bytes:
        self.commands.append(argv)
        if argv[:3] == ("ip", "link", "show"):
            if argv[-1] not in self.devices:
                raise RuntimeError(f"Device {argv[-1]} does not exist")
        elif argv[:3] == ("ip", "link", "add") or argv[:3] == ("ip", "tuntap", "add"):
            self.devices.add(argv[4])
        elif argv[:3] == ("ip", "link", "del"):
            self.devices.discard(argv[-1])
        elif argv[:4] == ("ip", "-j", "addr", "show"):
            return ("[" + ",".join(f'{{"ifname": "{d}", "mtu": 1500, "flags": []}}'
                                   for d in sorted(self.devices)) + "]").encode()
        await asyncio.sleep(0)
        return b""


class RecordingFirewall(Firewall):
    def __init__(self) -> None:
        super().__init__("strato_test")
        self.applied: list[list[PortFilter]] = []
        self.blocked: list[list[str]] = []

    async def apply(self, ports: Sequence[PortFilter],
                    members: Mapping[str, Sequence[str]], *,
                    blocked: Iterable[str] = ()) -> None:
        await asyncio.sleep(0.01)  # a pass takes a while: requests pile up meanwhile
        self.applied.append(list(ports))
        self.blocked.append(list(blocked))


class FakeConductor:
    def __init__(self, state: HostPorts) -> None:
        self.state = state
        self.reads = 0

    async def host_network_state(self, ctx: Any, host: str) -> HostPorts:
        self.reads += 1
        await asyncio.sleep(0)
        return self.state


def _state(*ports: str, networks: Sequence[str] = (NET,)) -> HostPorts:
    return HostPorts(ports=tuple(PortSecurity(
        port_id=p, network_id=NET, mac_address="fa:16:3e:00:00:01", mtu=1450,
        ips=("10.0.0.5",), rules=()) for p in ports), members={}, networks=tuple(networks))


def _host(state: HostPorts, ip: FakeIp) -> tuple[LinuxBridgeHost, RecordingFirewall,
                                                  FakeConductor]:
    firewall, conductor = RecordingFirewall(), FakeConductor(state)
    host = LinuxBridgeHost(HostName("h1"), conductor,
                           bridge=LinuxBridge(run=ip), firewall=firewall)
    return host, firewall, conductor


VIF = Vif(port_id=PORT, network_id=NET, network_name="net", mac_address="fa:16:3e:00:00:01",
          mtu=1450, subnets=(VifSubnet(id="s", cidr="10.0.0.0/24", ip_version=4,
                                       gateway_ip="10.0.0.1", ips=("10.0.0.5",)),))


async def test_plug_makes_bridge_and_tap_then_filters_the_port() -> None:
    ip = FakeIp()
    host, firewall, _ = _host(_state(PORT), ip)
    await host.plug(admin_context(), [VIF])
    assert ip.devices == {"brq5b680dcf-a7", "tapb4c384e6-77"}
    made = [c for c in ip.commands if c[2] in ("add", "set")]
    assert made[0] == ("ip", "link", "add", "name", "brq5b680dcf-a7", "type", "bridge")
    assert ("ip", "link", "set", "dev", "tapb4c384e6-77", "address", "fe:16:3e:00:00:01",
            "mtu", "1450", "master", "brq5b680dcf-a7", "up") in made
    [ruleset] = firewall.applied
    assert [(p.device, p.mac, p.ips) for p in ruleset] == [
        ("tapb4c384e6-77", "fa:16:3e:00:00:01", ("10.0.0.5",))]
    # Plugging again changes no device.
    before = set(ip.devices)
    await host.plug(admin_context(), [VIF])
    assert ip.devices == before


async def test_unplug_removes_the_tap_and_refilters() -> None:
    ip = FakeIp(["brq5b680dcf-a7", "tapb4c384e6-77"])
    host, firewall, _ = _host(_state(), ip)
    await host.unplug(admin_context(), [VIF])
    assert ip.devices == {"brq5b680dcf-a7"}
    assert firewall.applied == [[]]
    await host.unplug(admin_context(), [VIF])  # a gone tap is fine
    assert ip.devices == {"brq5b680dcf-a7"}


async def test_a_burst_of_changes_costs_at_most_two_passes() -> None:
    host, firewall, conductor = _host(_state(PORT), FakeIp())
    await asyncio.gather(*(host.refresh(admin_context()) for _ in range(50)))
    assert 1 <= len(firewall.applied) <= 2 and conductor.reads == len(firewall.applied)


async def test_a_full_pass_replugs_ports_and_removes_stale_devices() -> None:
    # After a host reboot the port's tap is gone; a tap and a bridge of things that no
    # longer exist are still there.
    ip = FakeIp(["tape63ab158-76", "brqdeadbeef-00"])
    host, firewall, _ = _host(_state(PORT), ip)
    await host.refresh(admin_context(), full=True)
    assert ip.devices == {"brq5b680dcf-a7", "tapb4c384e6-77"}
    assert [p.device for p in firewall.applied[-1]] == ["tapb4c384e6-77"]
    # A full pass always runs, even right after another.
    await host.refresh(admin_context(), full=True)
    assert len(firewall.applied) == 2


async def test_a_plugged_port_the_host_no_longer_filters_is_blocked() -> None:
    # The port drops out of the host's filtered ports (as when a tenant sets its
    # device_owner to network:dhcp or its binding:host_id elsewhere): its tap, which this
    # host plugged, passes nothing until it is unplugged; never is it left unfiltered.
    ip = FakeIp()
    host, firewall, conductor = _host(_state(PORT), ip)
    await host.plug(admin_context(), [VIF])
    assert firewall.blocked[-1] == []
    conductor.state = _state()
    await host.refresh(admin_context())
    assert firewall.applied[-1] == [] and firewall.blocked[-1] == ["tapb4c384e6-77"]
    await host.unplug(admin_context(), [VIF])
    assert firewall.blocked[-1] == []


class FailingIp(FakeIp):
    """``ip`` that fails on one device (a bug, not a StratoError)."""

    def __init__(self, bad: str) -> None:
        super().__init__()
        self.bad = bad

    async def __call__(self, *argv: str) -> bytes:
        if self.bad in argv and argv[:3] != ("ip", "link", "show"):
            raise ZeroDivisionError("unexpected")
        return await super().__call__(*argv)


async def test_a_full_pass_survives_a_port_that_cannot_be_plugged() -> None:
    ip = FailingIp("tapb4c384e6-77")
    state = HostPorts(ports=(*_state(PORT).ports, *_state(STALE).ports,
                             PortSecurity(port_id="not an id", network_id=NET,
                                          mac_address="fa:16:3e:00:00:09", mtu=1450,
                                          ips=("10.0.0.9",), rules=())),
                      members={}, networks=(NET,))
    host, firewall, _ = _host(state, ip)
    await host.refresh(admin_context(), full=True)
    assert "tape63ab158-76" in ip.devices  # the other port is plugged
    # Both valid ports are filtered (the one that failed to plug too, whatever its tap
    # became); the port whose id names no device is left out.
    assert [p.device for p in firewall.applied[-1]] == ["tapb4c384e6-77", "tape63ab158-76"]
