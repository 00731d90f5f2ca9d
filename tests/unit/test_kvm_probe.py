"""The KVM probe decides KVM or TCG from how a test guest behaves; here the "QEMU" is a
stand-in script, so each verdict can be forced."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from strato.virt.libvirt import host

pytestmark = pytest.mark.skipif(not os.access("/dev/kvm", os.R_OK | os.W_OK),
                                reason="the probe only runs QEMU when /dev/kvm is usable")


def fake_qemu(tmp_path: Path, body: str) -> str:
    script = tmp_path / f"qemu-{abs(hash(body))}"
    script.write_text(f"#!/bin/sh\n{body}\n")
    script.chmod(0o755)
    return str(script)


@pytest.fixture(autouse=True)
def fresh_cache() -> None:
    host._PROBE_CACHE.clear()


async def test_a_guest_that_exits_through_the_debug_port_means_kvm_works(tmp_path: Path
                                                                          ) -> None:
    probe = await host.probe_kvm(timeout=5, emulator=fake_qemu(tmp_path, "exit 3"))
    assert probe.usable and "ran in" in probe.reason


async def test_a_guest_that_misses_the_deadline_means_tcg(tmp_path: Path) -> None:
    probe = await host.probe_kvm(timeout=0.3, emulator=fake_qemu(tmp_path, "exec sleep 30"))
    assert not probe.usable and "did not finish within 0.3 s" in probe.reason


async def test_a_guest_that_fails_means_tcg_and_says_why(tmp_path: Path) -> None:
    qemu = fake_qemu(tmp_path, "echo 'Could not access KVM kernel module' >&2; exit 1")
    probe = await host.probe_kvm(timeout=5, emulator=qemu)
    assert not probe.usable
    assert "exit 1" in probe.reason and "Could not access KVM" in probe.reason


async def test_the_verdict_is_cached_per_emulator(tmp_path: Path) -> None:
    marker = tmp_path / "runs"
    qemu = fake_qemu(tmp_path, f"echo run >> {marker}; exit 3")
    assert (await host.probe_kvm(emulator=qemu)).usable
    assert (await host.probe_kvm(emulator=qemu)).usable
    assert marker.read_text().count("run") == 1


async def test_a_missing_emulator_means_tcg(tmp_path: Path) -> None:
    probe = await host.probe_kvm(emulator=str(tmp_path / "no-such-qemu"))
    assert not probe.usable and "not installed" in probe.reason
