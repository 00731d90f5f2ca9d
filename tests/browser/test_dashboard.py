"""The dashboard in a real browser: Debian's Chromium driven by playwright against
``strato up`` (an OS process, fake virt driver) on a loopback port.

One user's whole path, in order: log in, upload an image (progress bar), launch an
instance through the wizard and watch it become ACTIVE without reloading, read its
timeline and console log, delete it; a launch no host can take shows the scheduler's
explanation; another project's user sees none of it; an admin sees hypervisors and
services. Every page is saved as a screenshot under ``test-artifacts/dashboard/``.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from strato.client import CloudClient
from strato.client.auth import password_token
from tests.browser.browser_fixtures import browser_fixture, log_in, new_context, off_loop, shot
from tests.client.server_fixtures import ADMIN, TOKEN, RunningApi, add_member, start_api

__all__ = ["browser_fixture"]

PASSWORD = "browser-test-pw"


@pytest.fixture(scope="module")
def api(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunningApi]:
    """``strato up`` whose fake spawns take a second and a half and whose fake guests
    write their first console line two and a half seconds after that: long enough to
    watch a build and a boot in the browser (the detail page polls every 1.5 s, so a
    shorter boot can end before the page first shows the server ACTIVE)."""
    cluster = start_api(tmp_path_factory.mktemp("strato"),
                        {"STRATO_COMPUTE__FAKE__SPAWN_DELAY": "1.5",
                         "STRATO_COMPUTE__FAKE__CONSOLE_DELAY": "2.5"})
    try:
        yield RunningApi(cluster=cluster, url=cluster.api_url, token=TOKEN)
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def huge_flavor(api: RunningApi) -> str:
    """A flavor that fits the project's quota but no host: 1,000 GB of disk on a fake
    host of 500 GB."""
    async def make() -> str:
        token = await password_token(api.url, user=ADMIN.username, password=ADMIN.password,
                                     project=ADMIN.project_name)
        async with CloudClient(api.url, token) as client:
            body = {"flavor": {"name": "browser.huge", "vcpus": 1, "ram": 512,
                               "disk": 1000}}
            resp = await client.request("POST", "/v2.1/flavors", json=body)
            return str(resp.json()["flavor"]["id"])
    return off_loop(asyncio.run, make())


@pytest.fixture(scope="module")
def shared_network(api: RunningApi) -> str:
    """A shared network with a subnet, made by the admin (the fake data plane only
    records ports: no device appears on this machine)."""
    async def make() -> str:
        token = await password_token(api.url, user=ADMIN.username, password=ADMIN.password,
                                     project=ADMIN.project_name)
        async with CloudClient(api.url, token) as client:
            net = (await client.request("POST", "/networking/v2.0/networks", json={
                "network": {"name": "shared-net", "shared": True}})).json()["network"]
            await client.request("POST", "/networking/v2.0/subnets", json={"subnet": {
                "network_id": net["id"], "cidr": "10.231.0.0/24", "ip_version": 4,
                "name": "shared-subnet"}})
            return str(net["id"])
    return off_loop(asyncio.run, make())


def wizard_launch(page: Page, api: RunningApi, *, name: str, image: str, flavor: str,
                  count: int = 1) -> None:
    page.goto(f"{api.url}/dashboard/launch")
    page.fill("#name", name)
    page.fill("#count", str(count))
    page.click("button[value=next]")
    page.get_by_label(image, exact=True).check()
    page.click("button[value=next]")
    expect(page.locator("legend")).to_contain_text("Flavor")
    page.get_by_label(flavor, exact=True).check()
    page.click("button[value=next]")
    expect(page.locator("legend")).to_have_text("Networks")
    page.click("button[value=next]")
    expect(page.locator("legend")).to_have_text("Security groups and key pair")
    page.click("button[value=next]")
    expect(page.locator("legend")).to_have_text("Configuration")
    page.click("button[value=launch]")


def test_a_user_launches_watches_and_deletes_an_instance(
        api: RunningApi, browser: Browser, tmp_path: Path, huge_flavor: str,
        shared_network: str) -> None:
    off_loop(add_member, api, "web-team", "alice", PASSWORD)
    off_loop(add_member, api, "other-team", "bob", PASSWORD)
    context = new_context(browser)
    page = context.new_page()
    page_errors: list[str] = []
    page.on("pageerror", lambda exc: page_errors.append(str(exc)))

    page.goto(f"{api.url}/dashboard/instances")
    shot(page, "01-login")
    log_in(page, api.url, "alice", PASSWORD)
    cookie = next(c for c in context.cookies() if c["name"] == "strato_session")
    assert cookie["httpOnly"] and cookie["secure"] and cookie["path"] == "/dashboard"
    assert page.evaluate("document.cookie").find("strato_session") == -1
    shot(page, "02-instances-empty")

    # Upload an image from the browser: the progress bar fills, the image is active.
    disk = tmp_path / "browser-disk.img"
    disk.write_bytes(b"\0" * (3 * 1024 * 1024))
    page.goto(f"{api.url}/dashboard/images")
    page.fill("#image-name", "browser-image")
    page.select_option("#disk-format", "raw")
    page.set_input_files("#image-file", str(disk))
    page.evaluate("window.__noReload = true")
    page.click("#upload-form button[type=submit]")
    expect(page.locator("#upload-status")).to_have_text("Uploaded browser-disk.img.")
    expect(page.locator("#upload-progress")).to_have_js_property("value", 100)
    row = page.locator("#images tr[data-name='browser-image']")
    expect(row).to_contain_text("active")
    expect(row).to_contain_text("3.0 MiB")
    assert page.evaluate("window.__noReload") is True
    shot(page, "03-images")

    # A key pair made in the browser: its private key is shown once.
    page.goto(f"{api.url}/dashboard/keypairs")
    page.fill("#kp-name", "alice-key")
    page.click("form[action$='/keypairs'] button[type=submit]")
    expect(page.locator("pre.console")).to_contain_text("PRIVATE KEY")
    page.goto(f"{api.url}/dashboard/keypairs")
    expect(page.locator("table.list")).to_contain_text("alice-key")
    expect(page.locator("pre.console")).to_have_count(0)

    # The wizard: a step left incomplete says why, in place.
    page.goto(f"{api.url}/dashboard/launch")
    shot(page, "04-launch-details")
    page.click("button[value=next]")
    expect(page.locator("#err-name")).to_have_text("An instance needs a name.")
    page.fill("#name", "web-1")
    page.click("button[value=next]")
    page.click("button[value=next]")
    expect(page.locator("#err-image")).to_contain_text("Choose the image")
    page.get_by_label("browser-image", exact=True).check()
    page.click("button[value=next]")
    # The flavor step measures each flavor against the project's quota.
    tiny = page.locator("tr[data-flavor='m1.tiny']")
    expect(tiny.locator(".fit-verdict")).to_have_text("fits")
    shot(page, "05-launch-flavor")
    page.get_by_label("m1.tiny", exact=True).check()
    page.click("button[value=next]")
    expect(page.locator("legend")).to_have_text("Networks")
    page.get_by_label(re.compile("^shared-net")).check()
    expect(page.locator("#launch-form")).to_contain_text("10.231.0.0/24")
    page.click("button[value=next]")
    expect(page.locator("legend")).to_have_text("Security groups and key pair")
    expect(page.get_by_label(re.compile("^default"))).to_be_checked()
    page.select_option("#key_name", "alice-key")
    # Back and forth keeps every answer.
    page.click("button[value=back]")
    expect(page.get_by_label(re.compile("^shared-net"))).to_be_checked()
    page.click("button[value=next]")
    expect(page.locator("#key_name")).to_have_value("alice-key")
    page.click("button[value=next]")
    expect(page.locator("legend")).to_have_text("Configuration")
    page.fill("#user_data", "#!/bin/sh\necho hello from the dashboard\n")
    shot(page, "06-launch-configuration")
    page.click("button[value=launch]")

    # The detail page follows the build live: no reload (the marker survives).
    expect(page).to_have_url(re.compile(r"/dashboard/instances/[0-9a-f-]{36}$"))
    server_id = page.url.rsplit("/", 1)[1]
    page.evaluate("window.__noReload = true")
    expect(page.locator("#server-status")).to_have_text("BUILD")
    expect(page.locator("#timeline .result-running").first).to_be_visible()
    shot(page, "07-instance-building")
    expect(page.locator("#server-status")).to_have_text("ACTIVE")
    timeline = page.locator("#timeline")
    # ACTIVE once the guest runs; its boot lasts until its first console line.
    boot = timeline.locator("[data-event=compute_boot]")
    expect(boot).to_have_class(re.compile("result-running"))
    expect(boot).to_contain_text("waiting for the guest's first console output")
    expect(boot).to_have_class(re.compile("result-success"), timeout=10_000)
    assert page.evaluate("window.__noReload") is True
    for step in ("api", "scheduling", "build on the host", "claim", "network",
                 "image fetch", "spawn", "boot"):
        expect(timeline.locator(".step-label", has_text=re.compile(f"^{step}$"))
               ).to_have_count(1)
    expect(timeline.locator(".result-error")).to_have_count(0)
    expect(timeline.locator("[data-event=conductor_schedule_and_build_instances] "
                            ".step-details")).to_contain_text("alternate")
    # Its address on the shared network, and its key pair.
    expect(page.locator("#addresses-h + table")).to_contain_text("shared-net")
    expect(page.locator("#addresses-h + table")).to_contain_text(re.compile(r"10\.231\.0\.\d+"))
    expect(page.locator("dl.facts")).to_contain_text("alice-key")
    # A member sees no host names (the fake host is called client-test).
    assert "client-test" not in timeline.inner_text()
    shot(page, "07-instance-active")

    page.click("text=Console log")
    expect(page.locator("#console-output")).to_contain_text(f"uuid={server_id}")
    shot(page, "08-console")

    # Two at once: the list shows them building and updates the rows in place.
    wizard_launch(page, api, name="batch", image="browser-image", flavor="m1.tiny", count=2)
    expect(page).to_have_url(re.compile(r"/dashboard/instances$"))
    expect(page.locator(".flash")).to_contain_text("2 instances named batch-1")
    page.evaluate("window.__noReload = true")
    batch = page.locator("#instances tr", has_text="batch-")
    expect(batch).to_have_count(2)
    expect(batch.filter(has_text="BUILD")).to_have_count(2)
    shot(page, "09-instances-building")
    expect(batch.filter(has_text="ACTIVE")).to_have_count(2)
    assert page.evaluate("window.__noReload") is True
    # The status filter, by keyboard: choosing an option does nothing until Enter on
    # the form's button.
    page.focus("#status-filter")
    page.keyboard.press("ArrowDown")
    page.wait_for_timeout(300)
    expect(page).to_have_url(re.compile(r"/dashboard/instances$"))
    page.select_option("#status-filter", "BUILD")
    page.get_by_role("button", name="Filter").press("Enter")
    expect(page).to_have_url(re.compile(r"status=BUILD"))
    expect(page.locator(".empty")).to_have_text("No instances with status BUILD.")
    # With the pointer, picking an option is enough.
    page.click("#status-filter")
    page.select_option("#status-filter", "ACTIVE")
    expect(page).to_have_url(re.compile(r"status=ACTIVE"))
    expect(page.locator("#instances tbody tr")).to_have_count(3)
    # A narrow screen: the rows become labelled cards, nothing scrolls sideways.
    page.set_viewport_size({"width": 375, "height": 740})
    assert page.evaluate("document.documentElement.scrollWidth - window.innerWidth") <= 0
    shot(page, "09-instances-narrow")
    page.set_viewport_size({"width": 1280, "height": 720})

    # Reboot, stop and start, each confirmed first; the row follows.
    row = page.locator(f"#row-{server_id}")
    row.get_by_role("link", name="Reboot").click()
    expect(page.locator("h1")).to_have_text("Reboot instance")
    page.get_by_role("button", name="Reboot").click()
    expect(page.locator(".flash")).to_contain_text("web-1 is rebooting")
    expect(row).to_contain_text("ACTIVE")
    row = page.locator(f"#row-{server_id}")
    row.get_by_role("link", name="Stop").click()
    expect(page.locator("h1")).to_have_text("Stop instance")
    page.get_by_role("button", name="Stop").click()
    expect(page.locator(".flash")).to_contain_text("web-1 is stopping")
    page.goto(f"{api.url}/dashboard/instances")
    expect(row).to_contain_text("SHUTOFF")
    row.get_by_role("link", name="Start").click()
    page.get_by_role("button", name="Start").click()
    expect(row).to_contain_text("ACTIVE")
    shot(page, "09-instances")
    row.get_by_role("link", name="Delete").click()
    expect(page.locator("h1")).to_have_text("Delete instance")
    shot(page, "10-confirm-delete")
    page.get_by_role("button", name="Delete").click()
    expect(page.locator(".flash")).to_contain_text("web-1 is being deleted")
    expect(page.locator(f"#row-{server_id}")).to_have_count(0)

    # A launch no host can take: the detail page explains which filter removed the host.
    wizard_launch(page, api, name="too-big", image="browser-image", flavor="browser.huge")
    expect(page.locator("#server-status")).to_have_text("ERROR")
    fault = page.locator("#fault")
    expect(fault).to_contain_text("No valid host was found. 1 host: 1 removed by")
    expect(fault).to_contain_text("Disk")
    expect(page.locator("[data-event=conductor_schedule_and_build_instances]")
           ).to_have_class(re.compile("result-error"))
    too_big = page.url
    shot(page, "11-no-valid-host")
    assert page_errors == []

    # Another project's member sees none of it, and cannot open it by its address.
    other = new_context(browser)
    bob = other.new_page()
    log_in(bob, api.url, "bob", PASSWORD)
    expect(bob.locator("#instances")).to_have_count(0)
    expect(bob.locator(".empty")).to_have_text("No instances.")
    assert "web-1" not in bob.content() and "batch-1" not in bob.content()
    bob.goto(f"{api.url}/dashboard/images")
    expect(bob.locator("#images tr[data-name='browser-image']")).to_have_count(0)
    answer = bob.goto(too_big)
    assert answer is not None and answer.status == 404
    expect(bob.locator(".error")).to_contain_text("Not found")
    shot(bob, "12-other-project")
    other.close()
    context.close()


def test_admin_pages_narrow_screens_and_forged_forms(api: RunningApi,
                                                     browser: Browser) -> None:
    context = new_context(browser, viewport={"width": 375, "height": 740})
    page = context.new_page()
    log_in(page, api.url, ADMIN.username, ADMIN.password)
    page.goto(f"{api.url}/dashboard/admin/hypervisors")
    card = page.locator(".hypervisor").first
    expect(card.locator("meter")).to_have_count(3)
    expect(card).to_contain_text("vCPU")
    shot(page, "13-hypervisors-narrow")
    page.goto(f"{api.url}/dashboard/admin/services")
    expect(page.locator("table.list")).to_contain_text("strato-compute")
    expect(page.locator("table.list")).to_contain_text("up")
    shot(page, "14-services-narrow")
    for path in ("instances", "launch", "images", "flavors", "networks", "keypairs"):
        page.goto(f"{api.url}/dashboard/{path}")
        overflow = page.evaluate("document.documentElement.scrollWidth - window.innerWidth")
        assert overflow <= 0, f"/dashboard/{path} scrolls sideways on a 375 px screen"
        shot(page, f"15-{path}-narrow")

    # A form posted without the CSRF value is refused before it reaches the API.
    forged = page.request.post(f"{api.url}/dashboard/keypairs",
                               form={"name": "forged", "csrf": "not-the-value"})
    assert forged.status == 403
    page.goto(f"{api.url}/dashboard/keypairs")
    expect(page.locator("main")).not_to_contain_text("forged")

    # Log out: the token is revoked, the pages need a login again.
    page.get_by_role("button", name="Log out").click()
    expect(page).to_have_url(re.compile(r"/dashboard/login"))
    expect(page.locator(".flash")).to_have_text("You have logged out.")
    page.goto(f"{api.url}/dashboard/instances")
    expect(page).to_have_url(re.compile(r"/dashboard/login"))
    context.close()


def test_the_project_switcher(api: RunningApi, browser: Browser) -> None:
    off_loop(add_member, api, "switch-a", "carol", PASSWORD)
    off_loop(add_member, api, "switch-b", "carol", PASSWORD)
    context = new_context(browser)
    page = context.new_page()
    log_in(page, api.url, "carol", PASSWORD)
    expect(page.locator("#project option")).to_have_count(2)
    assert page.locator("#project option:checked").inner_text() == "switch-a"
    page.select_option("#project", label="switch-b")
    page.get_by_role("button", name="Switch").click()
    expect(page.locator(".flash")).to_have_text("Now working in project switch-b.")
    assert page.locator("#project option:checked").inner_text() == "switch-b"
    context.close()
