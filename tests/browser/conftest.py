"""Fixtures of the page's browser tests: Debian's Chromium, headless, driven by Playwright.

One browser per module, a fresh context (cookies, storage, 1280x800) per user.
The stack is the session's (tests/conftest.py: the dev stack and the four
services as processes); its gateway serves the page that ``make install``
built. Each test saves screenshots under ``out/screenshots/`` (gitignored).
"""

from __future__ import annotations

import re
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from playwright.sync_api import Browser, BrowserContext, Page, Route, expect, sync_playwright
from tools import chromium

from palette.devstack.services import ServiceGroup
from palette.gateway.settings import default_ui_dir

SCREENSHOTS = Path(__file__).resolve().parents[2] / "out" / "screenshots"
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
DESKTOP = {"width": 1280, "height": 800}
PHONE = {"width": 390, "height": 844}

expect.set_options(timeout=20_000)


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    """Debian's Chromium (installed where missing), headless; Playwright downloads no browser."""
    if default_ui_dir() is None:
        pytest.fail("the page is not built: run `make install` (tools/ui.py)", pytrace=False)
    try:
        executable = chromium.ensure()
    except RuntimeError as exc:
        pytest.fail(str(exc), pytrace=False)
    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(
            executable_path=str(executable), headless=True, args=CHROMIUM_ARGS
        )
        yield launched
        launched.close()


@pytest.fixture
def ui_url(services: ServiceGroup) -> str:
    """The page on the session's gateway."""
    return f"{services.gateway_url}/ui"


NewPage = Callable[..., Page]


LOCAL_HOSTS = {"127.0.0.1", "localhost", "::1"}


@pytest.fixture
def new_page(browser: Browser, ui_url: str) -> Iterator[NewPage]:
    """Pages of fresh browser contexts (one per user); closed after the test.

    The page works offline: a request to any host but this machine's is refused
    and fails the test.
    """
    contexts: list[BrowserContext] = []
    elsewhere: list[str] = []

    def local_only(route: Route) -> None:
        if urlsplit(route.request.url).hostname in LOCAL_HOSTS:
            route.continue_()
        else:
            elsewhere.append(route.request.url)
            route.abort()

    def make(viewport: dict[str, int] | None = None) -> Page:
        context = browser.new_context(viewport=viewport or DESKTOP, accept_downloads=True)
        context.route("**/*", local_only)
        contexts.append(context)
        page = context.new_page()
        page.set_default_timeout(20_000)
        return page

    yield make
    for context in contexts:
        context.close()
    assert not elsewhere, f"the page asked for something off this machine: {elsewhere}"


Shot = Callable[[Page, str], Path]


@pytest.fixture
def shot(request: pytest.FixtureRequest) -> Shot:
    """Save a full-page screenshot as out/screenshots/<test>-<name>.png."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    test = re.sub(r"[^A-Za-z0-9_-]+", "-", request.node.name)

    def save(page: Page, name: str) -> Path:
        path = SCREENSHOTS / f"{test}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return save


def sign_in(page: Page, ui_url: str, user: str | None = None) -> str:
    """Sign in with the dev sign-in as ``user`` (a fresh name by default); the jobs page shows."""
    name = user or f"ui-{uuid.uuid4().hex[:10]}"
    page.goto(f"{ui_url}/")
    page.get_by_label("User name").fill(name)
    page.get_by_role("button", name="Sign in as this user").click()
    expect(page.get_by_test_id("user-menu")).to_have_text(name)
    expect(page.get_by_role("heading", name="Jobs", exact=True)).to_be_visible()
    return name
