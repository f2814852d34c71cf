"""The web side (issue 17) in headless Chromium: the pages' own scripts run, against the
production routes on a real port. The Mini App gets a stand-in for Telegram's
telegram-web-app.js carrying initData signed the way Telegram signs it; the browser's address
is 127.0.0.1, so an IP allow-list refuses it when it leaves that address out.

What the HTTP tests (tests/test_web_*.py) prove of the server, these prove of the browser:
the page loads the cabinet with the initData header, submits a form and shows the answer,
opens Telegram's invoice; a pay link, the login form and its cookies work as a browser uses
them; no script error, nothing refused by the Content-Security-Policy."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from playwright.async_api import BrowserContext, Page, expect

from tests.harness.browser import DARK_THEME, Outside, serve_the_outside, telegram_stub, watch
from tests.harness.web import WebSite, init_data
from tests.test_web_cabinet import place_order, profile_row
from tests.test_web_login import PASSWORD, with_password
from tests.test_web_pay_links import chat_pay_link, invoice_of, path_of

pytestmark = pytest.mark.asyncio(loop_scope="session")

REFUSED = (
    "Access from your address 127.0.0.1 is not allowed by your IP allow-list. "
    "Change the list in the bot: Settings → Security."
)
BAD_POSTCODE = "❌ A postcode may contain only letters, digits, spaces and hyphens."


class Tab:
    """A page of the test's browser, with its script and console errors and what it asked
    of the world outside the site."""

    def __init__(self, page: Page, outside: Outside, errors: list[str]) -> None:
        self.page, self.outside, self.errors = page, outside, errors

    async def telegram_calls(self) -> list[list[Any]]:
        """What the Mini App's script asked of Telegram.WebApp, in order."""
        return await self.page.evaluate("window.__telegram.calls")

    def assert_clean(self) -> None:
        assert self.errors == []
        assert self.outside.refused == []


async def open_tab(context: BrowserContext, init: str | None = None, user_id: int = 0) -> Tab:
    """A new page; its telegram-web-app.js carries `init` (None: no initData, as outside
    Telegram)."""
    page = await context.new_page()
    user = {"id": user_id, "first_name": "Ivan", "language_code": "en"}
    outside = await serve_the_outside(page, telegram_stub(init, user, DARK_THEME))
    return Tab(page, outside, watch(page))


async def mini_app(site: WebSite, context: BrowserContext, user_id: int) -> Tab:
    """The Mini App as Telegram opens it: /app, with this customer's fresh initData."""
    tab = await open_tab(context, site.init(user_id), user_id)
    await tab.page.goto(site.url("/app"))
    return tab


async def allow(site: WebSite, account_id: int, entries: list[str]) -> None:
    async with site.gateway.transaction() as billing:
        await billing.set_ip_allowlist(account_id, entries)


async def log_in(page: Page, login: str, password: str = PASSWORD) -> None:
    await page.get_by_label("Login", exact=True).fill(login)
    await page.get_by_label("Password", exact=True).fill(password)
    await page.get_by_role("button", name="Log in").click()


# ---- the Mini App -----------------------------------------------------------------------------
async def test_the_mini_app_shows_the_balance_and_the_orders(
    site: WebSite, context: BrowserContext
) -> None:
    user, account_id = await site.customer(1701)
    now = datetime.fromtimestamp(site.now, UTC)
    order_id = await place_order(site, account_id, now + timedelta(days=9, hours=3))
    async with site.gateway.transaction() as billing:
        await billing.credit(account_id, 1250, kind="adjustment", actor="test")
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
    tab = await mini_app(site, context, user.id)
    page = tab.page

    await expect(page.locator(".balance")).to_have_text("Balance: €12.50")
    paid_until = (now + timedelta(days=9, hours=3)).strftime("%b %-d, %Y")
    await expect(page.locator("#orders li")).to_have_text(
        [f"#{order_id} VPS 2 ✅ Active Paid until {paid_until} · 10 days left"]
    )
    await expect(page.locator("#invoices li")).to_have_text(
        [
            f"Invoice No. {invoice.number} {now:%b %-d, %Y} · €20.00 · unpaid "
            "Pay by card Pay with Telegram Stars"
        ]
    )
    await expect(page.locator("h1")).to_have_text("Personal cabinet")
    await expect(page.locator("#unauthorized")).to_be_hidden()
    assert await tab.telegram_calls() == [["ready"], ["expand"]]
    # Telegram's theme, as telegram-web-app.js hands it to the page's CSS.
    colors = await page.evaluate(
        "[getComputedStyle(document.body).backgroundColor, "
        "getComputedStyle(document.querySelector('.card')).backgroundColor]"
    )
    assert colors == ["rgb(23, 33, 43)", "rgb(35, 46, 60)"]
    tab.assert_clean()


async def test_the_address_form_refuses_a_bad_postcode_then_saves_a_good_one(
    site: WebSite, context: BrowserContext
) -> None:
    user, account_id = await site.customer(1702)
    page = (tab := await mini_app(site, context, user.id)).page
    address = page.locator("#address")
    postcode = address.get_by_label("Postcode")
    await address.get_by_label("City *").fill("Kazan")
    await postcode.fill("420@111")
    await address.get_by_label("Address *").fill("Baumana 5")
    await address.get_by_role("button", name="Save").click()

    await expect(page.locator("#e-postcode")).to_have_text(BAD_POSTCODE)
    await expect(postcode).to_have_attribute("aria-invalid", "true")
    await expect(postcode).to_be_focused()  # the script puts the cursor on the refused field
    await expect(postcode).to_have_value("420@111")  # the form comes back as typed
    await expect(address.get_by_label("City *")).to_have_value("Kazan")
    await expect(page.get_by_role("status")).to_have_count(0)
    row = await profile_row(site, account_id)
    assert (row.city, row.postcode, row.address) == ("Moscow", None, "Tverskaya 1")  # nothing

    await postcode.fill("420 111")
    await address.get_by_role("button", name="Save").click()
    await expect(page.get_by_role("status")).to_have_text("✅ Saved")
    await expect(postcode).to_have_value("420 111")
    await expect(postcode).not_to_have_attribute("aria-invalid", "true")
    await expect(page.locator(".error")).to_have_count(0)
    row = await profile_row(site, account_id)
    assert (row.region, row.city, row.postcode, row.address) == (
        None,
        "Kazan",
        "420 111",
        "Baumana 5",
    )
    tab.assert_clean()


async def test_the_mini_app_pays_through_telegrams_invoice(
    site: WebSite, context: BrowserContext
) -> None:
    user, account_id = await site.customer(1703)
    invoice_id, number = await invoice_of(site, account_id)
    page = (tab := await mini_app(site, context, user.id)).page
    invoice = page.locator(f"#invoice-{invoice_id}")
    await invoice.get_by_role("button", name="Pay by card").click()

    link = f"https://t.me/$invoice-inv-{invoice_id}"
    await page.wait_for_function(
        "url => window.__telegram.calls.some(c => c[0] === 'openInvoice' && c[1] === url)", arg=link
    )
    (created,) = site.fake.calls_of("createInvoiceLink")
    assert (created["payload"], created["currency"]) == (f"inv:{invoice_id}", "EUR")
    # Telegram takes the payment (the bot's pre-checkout and receipt), then tells the page.
    payload = f"inv:{invoice_id}"
    await site.driver.feed(site.fake.pre_checkout(user, "EUR", 2000, payload))
    await site.driver.feed(site.fake.successful_payment(user, "EUR", 2000, payload, "ch-1703"))
    await page.evaluate("window.__telegram.invoiceClosed('paid')")
    await expect(invoice.locator(".status")).to_have_text("paid")
    await expect(invoice.get_by_role("button")).to_have_count(0)  # nothing left to pay
    await expect(page.locator(".title", has_text=f"Invoice No. {number}")).to_be_visible()
    assert [call[0] for call in await tab.telegram_calls()] == ["ready", "expand", "openInvoice"]
    tab.assert_clean()


async def test_the_mini_app_outside_telegram_or_with_forged_init_data(
    site: WebSite, context: BrowserContext
) -> None:
    user, _ = await site.customer(1704)
    unauthorized = (
        "This page works inside Telegram only. Close it and open the cabinet from the bot again."
    )
    # Opened in a plain browser: telegram-web-app.js gives no initData.
    outside = await open_tab(context, None)
    await outside.page.goto(site.url("/app"))
    await expect(outside.page.locator("#unauthorized")).to_have_text(unauthorized)
    await expect(outside.page.locator("#unauthorized")).to_be_visible()
    await expect(outside.page.locator("#cabinet")).to_be_hidden()
    outside.assert_clean()

    # initData signed with another bot's token: the server answers 401, the page says so.
    forged = init_data(user.id, site.now, token="123456:another-bots-token")
    tab = await open_tab(context, forged, user.id)
    await tab.page.goto(site.url("/app"))
    await expect(tab.page.locator("#unauthorized")).to_have_text(unauthorized)
    await expect(tab.page.locator("#unauthorized")).to_be_visible()
    await expect(tab.page.locator("#cabinet")).to_be_hidden()
    tab.assert_clean()


async def test_the_mini_app_refused_by_the_allow_list_names_the_address(
    site: WebSite, context: BrowserContext
) -> None:
    user, account_id = await site.customer(1705)
    await allow(site, account_id, ["203.0.113.0-203.0.113.255"])
    tab = await mini_app(site, context, user.id)
    await expect(tab.page.locator("#refused")).to_have_text(REFUSED)
    await expect(tab.page.locator("#refused")).to_be_visible()
    await expect(tab.page.locator("#cabinet")).to_be_hidden()
    await expect(tab.page.locator("#failed")).to_be_hidden()
    assert (await profile_row(site, account_id)).last_ip is None
    tab.assert_clean()


# ---- pay links --------------------------------------------------------------------------------
async def test_a_pay_link_with_payment_without_authorization_on_opens_the_invoice(
    site: WebSite, context: BrowserContext
) -> None:
    user, account_id = await site.customer(1711, pay_without_auth=True)
    invoice_id, number = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    page = (tab := await open_tab(context)).page
    await page.goto(site.url(path))

    await expect(page.locator("h1")).to_have_text(f"Invoice No. {number}")
    await expect(page.locator("main")).to_have_text(
        f"Invoice No. {number} Amount: €20.00 Status: unpaid "
        "Pay by card in Telegram Pay with Telegram Stars"
    )
    # The button posts its form; the answer sends the browser on to Telegram's invoice (the
    # page's Content-Security-Policy lets the form go there).
    link = f"https://t.me/$invoice-inv-{invoice_id}"
    await page.get_by_role("button", name="Pay by card in Telegram").click()
    await page.wait_for_url(link)
    assert tab.outside.telegram_links == [link]
    (created,) = site.fake.calls_of("createInvoiceLink")
    assert (created["payload"], created["currency"]) == (f"inv:{invoice_id}", "EUR")
    tab.assert_clean()


async def test_a_pay_link_with_it_off_asks_to_log_in_then_opens_the_invoice(
    site: WebSite, context: BrowserContext
) -> None:
    login, account_id = await with_password(site, 1712, pay_without_auth=False)
    user = site.driver.user(1712)
    invoice_id, number = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    page = (tab := await open_tab(context)).page
    await page.goto(site.url(path))

    await expect(page.locator("main")).to_have_text(
        "Log in to pay Payment without authorization is off for this account. Log in first, or "
        "pay the invoice in the bot. Log in Open the bot"
    )
    await expect(page.get_by_role("button", name="Pay by card in Telegram")).to_have_count(0)
    await page.get_by_role("link", name="Log in").click()
    await page.wait_for_url(site.url("/login") + "?next=" + path.replace("/", "%2F"))
    await expect(page.locator("h1")).to_have_text("Log in to the cabinet")
    await log_in(page, login)

    await page.wait_for_url(site.url(path))  # back on the pay link, logged in
    await expect(page.locator("h1")).to_have_text(f"Invoice No. {number}")
    await expect(page.get_by_role("button", name="Pay by card in Telegram")).to_be_visible()
    assert site.fake.calls_of("createInvoiceLink") == []
    tab.assert_clean()


# ---- the web login ----------------------------------------------------------------------------
async def test_logging_in_from_an_allowed_address(site: WebSite, context: BrowserContext) -> None:
    login, account_id = await with_password(site, 1721, show_last_ip=True)
    await allow(site, account_id, ["203.0.113.0-203.0.113.255", "127.0.0.1"])
    page = (tab := await open_tab(context)).page
    await page.goto(site.url("/cabinet"))
    await page.wait_for_url(site.url("/login?next=/cabinet"))  # no session yet
    await log_in(page, login)

    await page.wait_for_url(site.url("/cabinet"))
    await expect(page.locator(".balance")).to_have_text("Balance: €0.00")
    await expect(page.locator(".last-login")).to_contain_text(" from 127.0.0.1")
    await expect(page.get_by_role("button", name="Log out")).to_be_visible()
    assert (await profile_row(site, account_id)).last_ip == "127.0.0.1"
    cookies = {c["name"]: c for c in await context.cookies()}
    assert cookies["cabinet_session"]["httpOnly"] is True

    await page.get_by_role("button", name="Log out").click()
    await page.wait_for_url(site.url("/login"))
    await page.goto(site.url("/cabinet"))
    await page.wait_for_url(site.url("/login?next=/cabinet"))
    tab.assert_clean()


async def test_logging_in_from_a_refused_address(site: WebSite, context: BrowserContext) -> None:
    login, account_id = await with_password(site, 1722, show_last_ip=True)
    await allow(site, account_id, ["203.0.113.0-203.0.113.255", "2001:db8::5"])
    page = (tab := await open_tab(context)).page
    await page.goto(site.url("/login"))
    await log_in(page, login)

    await expect(page.get_by_role("alert")).to_have_text(REFUSED)
    assert page.url == site.url("/login")  # the form, answered: no way in
    await expect(page.get_by_label("Login", exact=True)).to_have_value(login)
    assert "cabinet_session" not in {c["name"] for c in await context.cookies()}
    assert (await profile_row(site, account_id)).last_ip is None
    await page.goto(site.url("/cabinet"))
    await page.wait_for_url(site.url("/login?next=/cabinet"))
    tab.assert_clean()
