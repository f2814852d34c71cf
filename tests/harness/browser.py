"""The web side in a real browser: Debian's chromium (`apt install chromium`) driven by
Playwright through `executable_path` (no browser download, `playwright install` never runs),
and a stand-in for Telegram's telegram-web-app.js that a Mini App page gets instead of
telegram.org's (there is no internet here). Used by tests/browser and tools/screenshots.py."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from typing import Any

from playwright.async_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    Request,
    Route,
)

from bot.web.app import TELEGRAM_JS

MOBILE = {"width": 390, "height": 844}  # a phone's viewport (the pages are mobile first)
# Telegram's theme parameters as its clients send them (a dark theme, so that the pages
# visibly follow them).
DARK_THEME = {
    "bg_color": "#17212b",
    "secondary_bg_color": "#232e3c",
    "text_color": "#f5f5f5",
    "hint_color": "#708499",
    "link_color": "#6ab3f3",
    "button_color": "#5288c1",
    "button_text_color": "#ffffff",
    "header_bg_color": "#17212b",
    "accent_text_color": "#6ab2f2",
    "section_header_text_color": "#6ab3f3",
    "section_separator_color": "#111921",
    "destructive_text_color": "#ec3942",
}
MISSING_CHROMIUM = (
    "Debian's chromium is not installed (no `chromium` on PATH): the browser tests and "
    "tools/screenshots.py drive it. Install it with `apt-get install chromium` "
    "(.ci/run does); Playwright's own browser download is not used."
)


class ChromiumMissing(RuntimeError):
    pass


def chromium_path() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise ChromiumMissing(MISSING_CHROMIUM)
    return path


async def launch_chromium(playwright: Playwright) -> Browser:
    """Headless Debian chromium; ChromiumMissing when it is not installed."""
    return await playwright.chromium.launch(executable_path=chromium_path(), headless=True)


# telegram-web-app.js stand-in; GIVEN: what telegram_stub hands it, as JSON.
TELEGRAM_STUB = """(function () {
  var given = GIVEN;
  var calls = [];
  var root = document.documentElement.style;
  Object.keys(given.theme).forEach(function (key) {
    root.setProperty("--tg-theme-" + key.replace(/_/g, "-"), given.theme[key]);
  });
  function record(name) {
    return function () { calls.push([name].concat([].slice.call(arguments))); };
  }
  window.__telegram = { calls: calls, invoiceClosed: null };
  window.Telegram = { WebApp: {
    initData: given.init_data,
    initDataUnsafe: given.unsafe,
    version: "8.0",
    platform: "tdesktop",
    colorScheme: "dark",
    themeParams: given.theme,
    isExpanded: false,
    viewportHeight: window.innerHeight,
    viewportStableHeight: window.innerHeight,
    ready: record("ready"),
    expand: function () { calls.push(["expand"]); window.Telegram.WebApp.isExpanded = true; },
    close: record("close"),
    openLink: record("openLink"),
    openTelegramLink: record("openTelegramLink"),
    showAlert: function (message, callback) {
      calls.push(["showAlert", message]);
      if (callback) callback();
    },
    openInvoice: function (url, callback) {
      calls.push(["openInvoice", url]);
      window.__telegram.invoiceClosed = callback || null;
    },
    onEvent: record("onEvent"),
    offEvent: record("offEvent")
  } };
})();
"""


def telegram_stub(
    init_data: str | None, user: dict[str, Any] | None = None, theme: dict[str, str] | None = None
) -> str:
    """telegram-web-app.js as far as bot/web/static/app.js uses it: `Telegram.WebApp` with the
    signed `initData` (None: the page opened outside Telegram, as in a plain browser, where the
    real script leaves it empty), `initDataUnsafe`, `themeParams` applied as the CSS variables
    the real script sets, and the methods the page calls; every call is recorded in
    `window.__telegram` for the tests to read."""
    params = {
        "init_data": init_data or "",
        "unsafe": {"user": user} if user and init_data else {},
        "theme": theme or {},
    }
    return TELEGRAM_STUB.replace("GIVEN", json.dumps(params), 1)


TELEGRAM_LINKS = "https://t.me/"
TELEGRAM_LINK_PAGE = "<!doctype html><title>t.me</title><p>Telegram's link (stand-in)</p>"


@dataclass
class Outside:
    """What the pages asked of the world outside the site under test."""

    telegram_links: list[str] = field(default_factory=list)  # t.me: opened, a stand-in page
    refused: list[str] = field(default_factory=list)  # anything else: refused


async def serve_the_outside(page: Page | BrowserContext, script: str) -> Outside:
    """Every request of `page` (or of each page of a context) outside the site under test
    (there is no internet here): telegram.org's script gets `script`, a t.me link a stand-in
    page, anything else is refused. The tests assert on what was asked."""
    outside = Outside()

    async def handle(route: Route, request: Request) -> None:
        if request.url == TELEGRAM_JS:
            await route.fulfill(
                status=200, content_type="application/javascript; charset=utf-8", body=script
            )
        elif request.url.startswith(TELEGRAM_LINKS):
            outside.telegram_links.append(request.url)
            await route.fulfill(status=200, content_type="text/html", body=TELEGRAM_LINK_PAGE)
        else:
            outside.refused.append(request.url)
            await route.abort("blockedbyclient")

    await page.route(lambda url: not url.startswith("http://127.0.0.1:"), handle)
    return outside


def watch(page: Page) -> list[str]:
    """The page's script errors and console errors (a CSP refusal is one), to assert none: a
    status the server answers with (Chromium logs "Failed to load resource" for a 401, a 422)
    is the tests' to check, not an error of the page."""
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(f"script error: {error}"))

    def console(message: ConsoleMessage) -> None:
        if message.type == "error" and not message.text.startswith("Failed to load resource"):
            errors.append(f"console: {message.text}")

    page.on("console", console)
    return errors
