"""Boot admission under TCG: a started guest holds its slot for a while, and gives it
back at once when it is stopped or destroyed."""

from __future__ import annotations

import asyncio
from pathlib import Path

from strato.domain.ids import HostName, InstanceId
from strato.virt.libvirt.driver import LibvirtDriver, LibvirtDriverConfig

A, B = InstanceId("a"), InstanceId("b")


def driver(tmp_path: Path, hold: float) -> LibvirtDriver:
    d = LibvirtDriver(LibvirtDriverConfig(host=HostName("h"), instances_path=tmp_path,
                                          boot_cpu_seconds=hold), images=None)  # type: ignore[arg-type]
    d._boot_slots = asyncio.Semaphore(1)
    return d


async def boot(d: LibvirtDriver, iid: InstanceId, log: list[str]) -> None:
    async with d._boot_slot(iid):
        log.append(iid)


async def test_a_second_boot_waits_until_the_first_guest_is_destroyed(tmp_path: Path
                                                                      ) -> None:
    d = driver(tmp_path, hold=3600)
    log: list[str] = []
    await boot(d, A, log)
    second = asyncio.create_task(boot(d, B, log))
    await asyncio.sleep(0.05)
    assert log == ["a"]          # the slot is still A's: it is "booting"
    d._free_slot(A)              # destroyed or stopped
    await asyncio.wait_for(second, 5)
    assert log == ["a", "b"]


async def test_the_slot_comes_back_by_itself_after_the_boot_time(tmp_path: Path) -> None:
    d = driver(tmp_path, hold=0.05)
    log: list[str] = []
    await boot(d, A, log)
    await asyncio.wait_for(boot(d, B, log), 5)
    assert log == ["a", "b"]


async def test_a_failed_start_gives_its_slot_back_at_once(tmp_path: Path) -> None:
    d = driver(tmp_path, hold=3600)
    try:
        async with d._boot_slot(A):
            raise RuntimeError("create failed")
    except RuntimeError:
        pass
    log: list[str] = []
    await asyncio.wait_for(boot(d, B, log), 5)
    assert log == ["b"]


async def test_restarting_a_guest_reuses_its_own_slot(tmp_path: Path) -> None:
    d = driver(tmp_path, hold=3600)
    log: list[str] = []
    await boot(d, A, log)
    await asyncio.wait_for(boot(d, A, log), 5)   # a reboot while A still holds the slot
    assert log == ["a", "a"]


class _StuckDomain:
    """A domain libvirt started but that never reached running (paused at start)."""

    def state(self) -> tuple[int, int]:
        import libvirt

        return libvirt.VIR_DOMAIN_PAUSED, 0


async def test_a_domain_that_never_runs_is_a_retryable_failure(tmp_path: Path) -> None:
    from strato.domain.errors import RescheduleBuild
    from strato.virt.libvirt.driver import _Waiter

    d = LibvirtDriver(LibvirtDriverConfig(host=HostName("h"), instances_path=tmp_path,
                                          spawn_timeout=0.05), images=None)  # type: ignore[arg-type]
    waiter = _Waiter({"started"}, {"stopped", "crashed"})
    try:
        await d._wait_running(_StuckDomain(), waiter, "strato-x")
    except RescheduleBuild as exc:
        assert "did not run within" in str(exc)
    else:
        raise AssertionError("a domain that never ran passed for running")
