"""Validators below the API match whole values: a trailing newline never passes as a
MAC, a resource id, a device name, an instance uuid or a hostname."""

from __future__ import annotations

from collections.abc import Callable

import pytest

from strato.api.networks.schemas import mac_address
from strato.domain.devices import bridge_name, tap_name
from strato.domain.errors import Invalid
from strato.network.firewall import PortFilter, render
from strato.virt.configdrive import InstanceMetadata, metadata_tree

PORT_ID = "b4c384e6-7711-4f1a-8e22-222222222222"


def _drive(uuid: str = PORT_ID, hostname: str = "vm") -> Callable[[], object]:
    return lambda: metadata_tree(InstanceMetadata(uuid=uuid, hostname=hostname, name="vm",
                                                  project_id="p"))


@pytest.mark.parametrize("check", [
    lambda: mac_address("fa:16:3e:00:00:01\n"),
    lambda: tap_name(PORT_ID + "\n"),
    lambda: bridge_name("5b680dcf-a7\n"),
    _drive(uuid=PORT_ID + "\n"),
    _drive(hostname="vm\n"),
], ids=["api-mac", "tap-name", "bridge-name", "drive-uuid", "drive-hostname"])
def test_a_trailing_newline_is_refused(check: Callable[[], object]) -> None:
    with pytest.raises((Invalid, ValueError)):
        check()


def test_the_firewall_never_renders_a_value_with_a_newline() -> None:
    bad = [PortFilter(device="tapb4c384e6-77", mac="fa:16:3e:00:00:01\n", ips=("10.0.0.5",),
                      rules=()),
           PortFilter(device="tapb4c384e6-77\n", mac="fa:16:3e:00:00:01",
                      ips=("10.0.0.5",), rules=())]
    for port in bad:
        script = render("strato_sg", [port], {})
        assert "fa:16:3e:00:00:01\n" not in script and "tapb4c384e6-77\n" not in script
    with pytest.raises(ValueError):
        render("strato_sg\n", [], {})
