"""Browser fixtures: one headless Debian chromium for the session (a missing chromium fails
every browser test with the way to install it: these tests are never skipped), a fresh
context per test (no cookies or storage carried over), and the web side of
tests/harness/web.py on a real port of 127.0.0.1, on SQLite.

The tests and these fixtures share the session's event loop: the browser lives as long as the
session, and the server under test answers on the loop the test awaits on."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio
from playwright.async_api import Browser, BrowserContext, Playwright, async_playwright, expect

from tests.harness.browser import MOBILE, ChromiumMissing, launch_chromium
from tests.harness.telegram import FakeTelegram
from tests.harness.web import WebSite, web_site

# Waits for what a page shows (never a sleep): generous, a loaded 2-core machine is slow.
expect.set_options(timeout=15_000)


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def playwright() -> AsyncIterator[Playwright]:
    async with async_playwright() as p:
        yield p


@pytest_asyncio.fixture(scope="session", loop_scope="session")
async def chromium(playwright: Playwright) -> AsyncIterator[Browser]:
    try:
        browser = await launch_chromium(playwright)
    except ChromiumMissing as exc:
        missing = str(exc)  # failed below, outside the handler: one message, no traceback
    else:
        yield browser
        await browser.close()
        return
    pytest.fail(missing, pytrace=False)


@pytest_asyncio.fixture(loop_scope="session")
async def context(chromium: Browser) -> AsyncIterator[BrowserContext]:
    """A phone-sized, English-speaking browser of its own for each test."""
    context = await chromium.new_context(viewport=MOBILE, locale="en-US", timezone_id="UTC")
    context.set_default_timeout(15_000)
    yield context
    await context.close()


@pytest_asyncio.fixture(loop_scope="session")
async def site(sqlite_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[WebSite]:
    async with web_site(sqlite_url, fake_telegram) as s:
        yield s
