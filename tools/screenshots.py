"""Screenshots of the web side's main pages for docs/screenshots/: the Mini App cabinet (in
Telegram's dark theme), an invoice's pay page and the web login, in English and Russian, on a
phone's viewport. The pages are the production routes on the test harness's server
(tests/harness/web.py) with the demo catalogue and a demo customer per language, rendered by
Debian's chromium (`apt install chromium`) through Playwright, as in tests/browser.

    .venv/bin/python tools/screenshots.py            # writes docs/screenshots/<page>-<lang>.png
    .venv/bin/python tools/screenshots.py --out DIR
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from playwright.async_api import Browser, BrowserContext, async_playwright  # noqa: E402
from sqlalchemy import update  # noqa: E402

from handlers.web_links import pay_url  # noqa: E402
from services.embedded import models as m  # noqa: E402
from services.embedded.db import _upgrade  # noqa: E402
from tests.harness.browser import (  # noqa: E402
    DARK_THEME,
    MOBILE,
    ChromiumMissing,
    launch_chromium,
    serve_the_outside,
    telegram_stub,
)
from tests.harness.telegram import FakeTelegram  # noqa: E402
from tests.harness.web import WebSite, web_site  # noqa: E402

LANGUAGES = {"en": "en-US", "ru": "ru-RU"}
TARIFFS = (5, 2)  # demo tariffs: VPS 2 and DS Pro
TICKETS = {
    "en": ("The server does not boot", "It stopped after the reboot."),
    "ru": ("Сервер не загружается", "Перестал отвечать после перезагрузки."),
}
PROFILES = {
    "en": {
        "last_name": "Smith",
        "first_name": "John",
        "email": "john@example.com",
        "city": "London",
        "postcode": "NW1 6XE",
        "address": "221B Baker Street",
    },
    "ru": {
        "last_name": "Иванов",
        "first_name": "Иван",
        "email": "ivan@example.com",
        "city": "Москва",
        "postcode": "125009",
        "address": "ул. Тверская, 1",
    },
}
USER_ID = 5001


async def demo_customer(site: WebSite, language: str) -> tuple[int, int, int]:
    """A customer with a balance, two running orders, an unpaid invoice and a ticket;
    returns (Telegram id, account id, invoice id)."""
    user, account_id = await site.customer(
        USER_ID, language=language, pay_without_auth=True, show_last_ip=True, **PROFILES[language]
    )
    now = datetime.fromtimestamp(site.now, UTC)
    async with site.gateway.transaction() as billing:
        await billing.credit(account_id, 200000, kind="adjustment", actor="demo")
        spent = 0
        for tariff, days in zip(TARIFFS, (23, 4), strict=True):
            order = await billing.place_order(account_id, tariff, 1)
            spent += order.price_minor
            paid_until = now + timedelta(days=days, hours=5)
            await billing.session.execute(
                update(m.Order).where(m.Order.id == order.id).values(paid_until=paid_until)
            )
        await billing.debit(account_id, 200000 - spent - 4250, kind="adjustment")  # €42.50 left
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
        subject, text = TICKETS[language]
        await billing.create_ticket(account_id, "tech", subject, text)
        await billing.record_last_ip(account_id, "203.0.113.24")
    return user.id, account_id, invoice.id


async def shoot(
    context: BrowserContext,
    url: str,
    wait_for: str,
    path: Path,
    mini_app: dict[str, Any] | None = None,
    login: str | None = None,
) -> None:
    """A full-page screenshot of `url` once `wait_for` shows; `mini_app`: what Telegram's
    script hands the page (else none: a plain browser); `login` typed into the login form."""
    page = await context.new_page()
    outside = await serve_the_outside(page, telegram_stub(**(mini_app or {"init_data": None})))
    await page.goto(url)
    await page.locator(wait_for).first.wait_for()
    if login is not None:
        await page.locator("#login").fill(login)
    await page.screenshot(path=str(path), full_page=True)
    await page.close()
    if outside.refused:
        raise RuntimeError(f"{path.name}: the page asked for {outside.refused}")
    print(path.relative_to(ROOT) if path.is_relative_to(ROOT) else path)


async def shoot_language(browser: Browser, language: str, database_url: str, out: Path) -> None:
    """The three pages in `language`, each from a site of its own (the same numbers)."""
    async with web_site(database_url, FakeTelegram()) as site:
        user_id, account_id, invoice_id = await demo_customer(site, language)
        link = pay_url(site.context.settings, invoice_id, account_id, site.now)
        assert link is not None
        pay_path = "/pay/" + link.rsplit("/pay/", 1)[1]
        context = await browser.new_context(
            viewport=MOBILE, locale=LANGUAGES[language], timezone_id="UTC", device_scale_factor=1
        )
        first_name = PROFILES[language]["first_name"]
        user = {"id": user_id, "first_name": first_name, "language_code": language}
        mini_app = {
            "init_data": site.init(user_id, language=language),
            "user": user,
            "theme": DARK_THEME,
        }
        await shoot(
            context, site.url("/app"), ".balance", out / f"cabinet-{language}.png", mini_app
        )
        await shoot(context, site.url(pay_path), "form", out / f"pay-{language}.png")
        async with site.gateway.transaction() as billing:
            login = (await billing.get_account(account_id)).login
        await shoot(context, site.url("/login"), "form", out / f"login-{language}.png", login=login)
        await context.close()


async def main(out: Path, databases: dict[str, str]) -> None:
    async with async_playwright() as playwright:
        browser = await launch_chromium(playwright)
        for language, database_url in databases.items():
            await shoot_language(browser, language, database_url, out)
        await browser.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "screenshots")
    args = parser.parse_args()
    args.out.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        databases = {
            language: f"sqlite+aiosqlite:///{tmp}/{language}.sqlite3" for language in LANGUAGES
        }
        for database_url in databases.values():
            _upgrade(database_url, "head")
        try:
            asyncio.run(main(args.out.resolve(), databases))
        except ChromiumMissing as exc:
            sys.exit(str(exc))
