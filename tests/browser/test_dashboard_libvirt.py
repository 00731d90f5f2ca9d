"""The dashboard on the real path: a tiny guest launched through the wizard boots under
libvirtd + QEMU, its console log in the browser shows what the guest printed (its user
data ran), the timeline shows the real spawn, and deleting it leaves no domain.

The cloud runs embedded, serving HTTP on a loopback port, in a thread with its own event
loop (playwright's sync API keeps one in the test's thread).
"""

from __future__ import annotations

import asyncio
import re
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from playwright.sync_api import Browser, expect

from strato.tinyguest import TinyGuest
from tests.browser.browser_fixtures import browser_fixture, log_in, new_context, shot

# ruff: noqa: F811
from tests.libvirt_fixtures import (  # noqa: F401
    Sandbox,
    domains_with,
    libvirt_cloud,
    sandbox,
    tiny_guest,
)

__all__ = ["browser_fixture"]

pytestmark = [pytest.mark.libvirt, pytest.mark.slow]

ADMIN_PASSWORD = "strato-admin"  # identity.admin_password's default


@contextmanager
def cloud_in_thread(data_dir: Path, box: Sandbox, guest: TinyGuest) -> Iterator[str]:
    """An embedded cloud with one libvirt compute, the tiny guest as image ``tiny`` and
    the flavor ``lv.tiny``; its URL. Stopped (and its domains gone) on the way out."""
    ready = threading.Event()
    state: dict[str, object] = {}

    async def main() -> None:
        stop = asyncio.Event()
        state["loop"], state["stop"] = asyncio.get_running_loop(), stop
        async with libvirt_cloud(data_dir, box, serve_http=True) as lv:
            await lv.upload("tiny", guest.disk, "qcow2")
            await lv.flavor("lv.tiny")
            state["url"] = lv.cloud.settings.api.url
            ready.set()
            await stop.wait()

    def run() -> None:
        try:
            asyncio.run(main())
        except BaseException as exc:  # handed to the test's thread
            state["error"] = exc
        finally:
            ready.set()

    thread = threading.Thread(target=run, name="libvirt-cloud")
    thread.start()
    try:
        assert ready.wait(300), "the cloud did not start in 5 minutes"
        if "error" in state:
            raise AssertionError("the cloud failed to start") from state["error"]  # type: ignore[misc]
        yield str(state["url"])
    finally:
        loop, stop = state.get("loop"), state.get("stop")
        if isinstance(loop, asyncio.AbstractEventLoop) and isinstance(stop, asyncio.Event):
            loop.call_soon_threadsafe(stop.set)
        thread.join(180)
        assert not thread.is_alive(), "the cloud did not stop"
        if "error" in state:
            raise AssertionError("the cloud failed") from state["error"]  # type: ignore[misc]


def test_a_real_guest_launched_from_the_browser(tmp_path: Path, sandbox: Sandbox,
                                                tiny_guest: TinyGuest,
                                                browser: Browser) -> None:
    with cloud_in_thread(tmp_path, sandbox, tiny_guest) as url:
        context = new_context(browser)
        page = context.new_page()
        log_in(page, url, "admin", ADMIN_PASSWORD)
        page.goto(f"{url}/dashboard/launch")
        page.fill("#name", "dash-guest")
        page.click("button[value=next]")
        page.get_by_label("tiny", exact=True).check()
        page.click("button[value=next]")
        page.get_by_label("lv.tiny", exact=True).check()
        for legend in ("Networks", "Security groups and key pair", "Configuration"):
            page.click("button[value=next]")
            expect(page.locator("legend")).to_have_text(legend)
        page.fill("#user_data", "#!/bin/sh\necho \"user-data says <dashboard & co>\"\n")
        page.check("#config_drive")
        page.click("button[value=launch]")

        expect(page).to_have_url(re.compile(r"/dashboard/instances/[0-9a-f-]{36}$"))
        server_id = page.url.rsplit("/", 1)[1]
        expect(page.locator("#server-status")).to_have_text("ACTIVE", timeout=120_000)
        assert domains_with(sandbox.prefix) != []
        timeline = page.locator("#timeline")
        spawn = timeline.locator("[data-event=compute_spawn]")
        expect(spawn).to_have_class(re.compile("result-success"))
        # The boot ends with the guest's first console line (seconds under TCG).
        boot = timeline.locator("[data-event=compute_boot]")
        expect(boot).to_have_class(re.compile("result-success"), timeout=120_000)
        assert boot.locator(".step-time").inner_text().endswith(" s")
        # An admin sees the host the scheduler chose.
        expect(timeline.locator("[data-event=conductor_schedule_and_build_instances]")
               ).to_contain_text(f"Host: {sandbox.host}")
        shot(page, "20-libvirt-instance")

        # The console log, as the guest wrote it (the user data ran from the drive).
        console = page.locator("#console-output")
        for _ in range(60):
            page.goto(f"{url}/dashboard/instances/{server_id}/console")
            if "user-data exit=" in console.inner_text():
                break
            page.wait_for_timeout(1000)
        text = console.inner_text()
        assert f"strato-guest: uuid={server_id}" in text
        assert "user-data says <dashboard & co>" in text
        assert "strato-guest: user-data exit=0" in text
        shot(page, "21-libvirt-console")

        page.goto(f"{url}/dashboard/instances/{server_id}/confirm/delete")
        page.get_by_role("button", name="Delete").click()
        expect(page.locator(".flash")).to_contain_text("dash-guest is being deleted")
        expect(page.locator(f"#row-{server_id}")).to_have_count(0, timeout=60_000)
        for _ in range(60):
            if not domains_with(sandbox.prefix):
                break
            page.wait_for_timeout(500)
        assert domains_with(sandbox.prefix) == []
        context.close()
