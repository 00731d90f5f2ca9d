"""What the browser tests share: Debian's Chromium under playwright, screenshots as test
artifacts, logging in by keyboard, and running event-loop code beside playwright."""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import ParamSpec, TypeVar

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, expect, sync_playwright

__all__ = ["ARTIFACTS", "CHROMIUM", "browser_fixture", "log_in", "new_context", "off_loop",
           "shot"]

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = Path(__file__).resolve().parents[2] / "test-artifacts" / "dashboard"
TIMEOUT_MS = 30_000
P = ParamSpec("P")
T = TypeVar("T")


def off_loop(fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
    """Run ``fn`` (which runs its own event loop) in a thread: playwright's sync API
    keeps one running in the test's thread."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(fn, *args, **kwargs).result()


@pytest.fixture(scope="module", name="browser")
def browser_fixture() -> Iterator[Browser]:
    """Chromium from Debian (``scripts/setup-system.sh`` installs it): a missing
    browser fails the test rather than skipping it."""
    assert CHROMIUM.exists(), f"{CHROMIUM} is missing: run `make setup`"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as pw:
        chromium = pw.chromium.launch(executable_path=str(CHROMIUM))
        try:
            yield chromium
        finally:
            chromium.close()


def new_context(browser: Browser, **kw: object) -> BrowserContext:
    context = browser.new_context(**kw)  # type: ignore[arg-type]
    context.set_default_timeout(TIMEOUT_MS)
    return context


def shot(page: Page, name: str) -> None:
    """A full-page screenshot into ``test-artifacts/dashboard/<name>.png``."""
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"), full_page=True)


def log_in(page: Page, url: str, user: str, password: str) -> None:
    """Log in by keyboard alone: the field has focus, Tab moves, Enter submits."""
    page.goto(f"{url}/dashboard/")
    expect(page).to_have_url(re.compile(r"/dashboard/login"))
    expect(page.locator("#username")).to_be_focused()
    page.keyboard.type(user)
    page.keyboard.press("Tab")
    page.keyboard.type(password)
    page.keyboard.press("Enter")
    expect(page).to_have_url(re.compile(r"/dashboard/instances"))
    expect(page.locator(".user")).to_have_text(user)
