"""Namespaces that stand in for guests in the data-plane tests: each has one veth into a
network's bridge and a MAC of the test's choosing. Names carry a random tag; the test
removes what it made."""

from __future__ import annotations

import asyncio
import contextlib
import shutil
import subprocess
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest

from strato.domain.devices import bridge_name

__all__ = ["STATE_ROOT", "Client", "ip_command", "state_dir"]

STATE_ROOT = Path("/var/tmp/strato-tests/dhcp")


def ip_command(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True)


class Client:
    """A namespace with one veth into the network's bridge, and a MAC of our choosing."""

    def __init__(self, network_id: str, mac: str) -> None:
        tag = uuid.uuid4().hex[:8]
        self.ns, self.outer, self.inner, self.mac = f"stc-{tag}", f"vc{tag}", f"vci{tag}", mac
        self.bridge = bridge_name(network_id)

    def create(self) -> None:
        for cmd in (("netns", "add", self.ns),
                    ("link", "add", self.outer, "type", "veth", "peer", "name", self.inner,
                     "netns", self.ns),
                    ("link", "set", "dev", self.outer, "addrgenmode", "none"),
                    ("link", "set", "dev", self.outer, "master", self.bridge, "up"),
                    ("-n", self.ns, "link", "set", "dev", self.inner, "address", self.mac),
                    ("-n", self.ns, "link", "set", "dev", self.inner, "up")):
            done = ip_command(*cmd)
            assert done.returncode == 0, (cmd, done.stderr)

    async def lease(self) -> str:
        """What udhcpc is offered (without configuring anything)."""
        proc = await asyncio.create_subprocess_exec(
            "ip", "netns", "exec", self.ns, "busybox", "udhcpc", "-i", self.inner, "-n", "-q",
            "-f", "-t", "4", "-T", "1", "-s", "/bin/true",
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        out, _ = await proc.communicate()
        return out.decode(errors="replace")

    def remove(self) -> None:
        ip_command("link", "del", "dev", self.outer)
        ip_command("netns", "del", self.ns)




@pytest.fixture
def state_dir() -> Iterator[Path]:
    """Where dnsmasq's files go: a directory dnsmasq (as nobody) can reach, unlike
    pytest's private tmp_path."""
    path = STATE_ROOT / uuid.uuid4().hex[:8]
    path.mkdir(parents=True, mode=0o755)
    STATE_ROOT.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)
        with contextlib.suppress(OSError):
            STATE_ROOT.rmdir()  # only when no other test's directory is left in it
