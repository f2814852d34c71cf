"""The Mini App cabinet (issue 17, items 1, 2 and 5) over real HTTP, on SQLite and PostgreSQL:
every request authenticated by Telegram's initData (signature with the bot token, maximum
age), the cabinet's sections, the profile and address forms with the chat's validators, paying
an invoice through the bot's own Telegram invoice, and the security headers."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from html import unescape
from typing import Any
from urllib.parse import parse_qsl, urlencode

import pytest
from sqlalchemy import func, select, update

from services.embedded import models as m
from tests.harness.telegram import FakeTelegram
from tests.harness.web import WebSite, init_data, init_fields, sign_init_data, web_site

MAX_AGE = 3600  # WEB_INITDATA_MAX_AGE's default
VPS_2 = 5  # a demo tariff


@pytest.fixture
async def site(database_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[WebSite]:
    async with web_site(database_url, fake_telegram) as s:
        yield s


def text_of(html: str) -> str:
    """The text of the page's body (or of a fragment) with its tags dropped and whitespace
    collapsed (for exact asserts)."""
    body = html.split("<body>", 1)[-1]
    return " ".join(unescape(re.sub(r"<[^>]+>", " ", body)).split())


async def place_order(site: WebSite, account_id: int, paid_until: datetime) -> int:
    async with site.gateway.transaction() as billing:
        await billing.credit(account_id, 100000, kind="adjustment", actor="test")
        order = await billing.place_order(account_id, VPS_2, 1)
        await billing.debit(account_id, 100000 - order.price_minor, kind="adjustment")
        await billing.session.execute(
            update(m.Order).where(m.Order.id == order.id).values(paid_until=paid_until)
        )
        return order.id


async def profile_row(site: WebSite, account_id: int) -> m.Account:
    async with site.gateway.transaction() as billing:
        row = await billing.session.get(m.Account, account_id)
        assert row is not None
        return row


# ---- initData -------------------------------------------------------------------------------
async def test_valid_init_data_opens_the_own_cabinet(site: WebSite) -> None:
    user, account_id = await site.customer(701)
    now = datetime.fromtimestamp(site.now, UTC)
    order_id = await place_order(site, account_id, now + timedelta(days=9, hours=3))
    async with site.gateway.transaction() as billing:
        await billing.credit(account_id, 1250, kind="adjustment", actor="test")
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
        await billing.create_ticket(account_id, "billing", "Wrong amount", "Please check")
    status, html = await site.app_get("/app/api/cabinet", site.init(user.id))
    assert status == 200
    paid_until = (now + timedelta(days=9, hours=3)).strftime("%b %-d, %Y")
    assert text_of(html) == (
        "Personal cabinet Login: tg701 Balance: €12.50 "
        f"Orders #{order_id} VPS 2 ✅ Active Paid until {paid_until} · 10 days left "
        f"Invoices Invoice No. {invoice.number} {now:%b %-d, %Y} · €20.00 · unpaid "
        "Pay by card Pay with Telegram Stars "
        "Tickets #1 Wrong amount 🟢 Open "
        "Profile and contacts Last name * First name * E-mail * Save "
        "A new e-mail address is confirmed in the bot: Settings → Profile. "
        "Postal address Country: not specified (set it once in the bot: Settings → Address) "
        "Region City * Postcode Address * Save"
    )
    assert 'name="last_name" value="Ivanov"' in html
    assert 'name="address" value="Tverskaya 1"' in html
    assert f'data-pay="{invoice.id}" data-method="card"' in html


async def test_forged_init_data_gets_401(site: WebSite) -> None:
    user, _ = await site.customer(702)
    good = init_fields(user.id, site.now)
    forged = [
        None,  # no header
        "",
        "not a query string",
        init_data(user.id, site.now, token="123456789:another-bot-token-entirely-here"),
        # signed for 702, the user swapped for 703 afterwards
        urlencode(
            {
                **dict(parse_qsl(sign_init_data(good))),
                "user": json.dumps({"id": 703, "first_name": "Eve"}, separators=(",", ":")),
            }
        ),
        urlencode({k: v for k, v in parse_qsl(sign_init_data(good)) if k != "hash"}),
        sign_init_data({k: v for k, v in good.items() if k != "user"}),  # signed, but no user
        sign_init_data(good) + "&hash=ffff",
        "x" * 8000,
    ]
    for init in forged:
        assert await site.app_get("/app/api/cabinet", init) == (401, '{"error": "unauthorized"}')
    assert (await site.app_get("/app/api/cabinet", sign_init_data(good)))[0] == 200


async def test_stale_init_data_gets_401(site: WebSite) -> None:
    user, _ = await site.customer(704)
    assert (await site.app_get("/app/api/cabinet", site.init(user.id, MAX_AGE)))[0] == 200
    assert (await site.app_get("/app/api/cabinet", site.init(user.id, MAX_AGE + 1)))[0] == 401
    assert (await site.app_get("/app/api/cabinet", site.init(user.id, 24 * 3600)))[0] == 401
    # From the future beyond clock skew: not Telegram's.
    assert (await site.app_get("/app/api/cabinet", site.init(user.id, -61)))[0] == 401
    assert (await site.app_get("/app/api/cabinet", site.init(user.id, -60)))[0] == 200
    # The same initData ages out as the clock moves on.
    init = site.init(user.id)
    site.set_clock(site.now + MAX_AGE + 1)
    assert (await site.app_get("/app/api/cabinet", init))[0] == 401


async def test_no_account_is_created_from_the_web(site: WebSite) -> None:
    status, html = await site.app_get("/app/api/cabinet", site.init(799))
    assert status == 200
    assert text_of(html) == (
        "Personal cabinet You have no billing account yet. Start the bot first: it creates "
        "your account. Open the bot"
    )
    assert 'href="https://t.me/cabinet_test_bot"' in html
    async with site.gateway.transaction() as billing:
        assert await billing.find_account_by_telegram(799) is None
        assert await billing.session.scalar(select(func.count()).select_from(m.Account)) == 0


async def test_the_cabinet_speaks_the_accounts_language(site: WebSite) -> None:
    user, _ = await site.customer(705, language="ru")
    status, html = await site.app_get("/app/api/cabinet", site.init(user.id, language="en"))
    assert status == 200
    assert text_of(html).startswith("Личный кабинет Логин: tg705 Баланс: 0,00 €")
    assert "Заказов пока нет." in text_of(html)


# ---- the forms --------------------------------------------------------------------------------
async def test_address_form_bad_then_good_postcode(site: WebSite) -> None:
    user, account_id = await site.customer(710)
    form = {"region": "", "city": "Kazan", "postcode": "420@111", "address": "Baumana 5"}
    status, html = await site.app_post("/app/api/forms/address", site.init(user.id), form)
    assert status == 422
    assert "A postcode may contain only letters, digits, spaces and hyphens." in text_of(html)
    assert 'name="postcode" value="420@111" aria-invalid="true"' in html
    assert 'name="city" value="Kazan"' in html  # shown back as typed
    row = await profile_row(site, account_id)
    assert (row.city, row.postcode, row.address) == ("Moscow", None, "Tverskaya 1")  # nothing

    form["postcode"] = "420 111"
    status, html = await site.app_post("/app/api/forms/address", site.init(user.id), form)
    assert status == 200
    assert "✅ Saved" in text_of(html)
    assert 'name="postcode" value="420 111"' in html
    row = await profile_row(site, account_id)
    assert (row.region, row.city, row.postcode, row.address) == (
        None,
        "Kazan",
        "420 111",
        "Baumana 5",
    )


async def test_profile_form_uses_the_chats_validators(site: WebSite) -> None:
    user, account_id = await site.customer(711, language="ru")
    form = {"last_name": "Petrov2", "first_name": "", "email": "petrov@"}
    status, html = await site.app_post("/app/api/forms/profile", site.init(user.id), form)
    assert status == 422
    page = text_of(html)
    assert "Используйте только буквы, пробелы, дефисы и апострофы." in page
    assert "Пустое значение." in page
    assert "Это не похоже на адрес e-mail (пример: name@example.com)." in page
    row = await profile_row(site, account_id)
    assert (row.last_name, row.first_name, row.email) == ("Ivanov", "Ivan", "ivan@example.com")

    form = {"last_name": "  Petrov  ", "first_name": "Pyotr", "email": "Petrov@Example.COM"}
    status, html = await site.app_post("/app/api/forms/profile", site.init(user.id), form)
    assert status == 200
    row = await profile_row(site, account_id)
    assert (row.last_name, row.first_name, row.email) == ("Petrov", "Pyotr", "Petrov@example.com")
    assert row.email_confirmed is False  # a new address is confirmed in the bot


async def test_forms_take_only_json_with_valid_init_data(site: WebSite) -> None:
    """CSRF: what a page on another site can send (a plain form post, no initData header)
    changes nothing."""
    user, account_id = await site.customer(712)
    form = {"region": "", "city": "Kazan", "postcode": "", "address": "Baumana 5"}
    assert (await site.app_post("/app/api/forms/address", None, form))[0] == 401
    stale = site.init(user.id, MAX_AGE + 1)
    assert (await site.app_post("/app/api/forms/address", stale, form))[0] == 401
    async with site.client.post(
        "/app/api/forms/address", data=form, headers={"X-Telegram-Init-Data": site.init(user.id)}
    ) as response:
        assert response.status == 400  # form-encoded: not what the Mini App sends
    bad = [{"city": 5}, ["Kazan"]]
    for body in bad:
        assert (await site.app_post("/app/api/forms/address", site.init(user.id), body))[0] == 400
    assert (await site.app_post("/app/api/forms/password", site.init(user.id), form))[0] == 400
    row = await profile_row(site, account_id)
    assert (row.city, row.address) == ("Moscow", "Tverskaya 1")


# ---- paying from the Mini App -----------------------------------------------------------------
async def test_pay_button_opens_the_bots_own_invoice(site: WebSite) -> None:
    user, account_id = await site.customer(720)
    _, other_id = await site.customer(721)
    async with site.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
        theirs = await billing.create_invoice(other_id, 2000, "EUR")
    init = site.init(user.id)
    body = {"invoice": invoice.id, "method": "card"}
    status, answer = await site.app_post("/app/api/pay", init, body)
    assert (status, json.loads(answer)) == (200, {"url": "https://t.me/$invoice-inv-1"})
    (link,) = site.fake.calls_of("createInvoiceLink")
    assert link["payload"] == invoice.payload
    assert (link["currency"], link["prices"][0]["amount"]) == ("EUR", 2000)
    # The bot's pre-checkout check still decides: the invoice is payable now...
    calls = await site.driver.feed(site.fake.pre_checkout(user, "EUR", 2000, invoice.payload))
    assert [c["ok"] for c in calls if c.method == "answerPreCheckoutQuery"] == [True]

    # ...another customer's invoice is not found, whatever the id says
    foreign = {"invoice": theirs.id, "method": "card"}
    status, answer = await site.app_post("/app/api/pay", init, foreign)
    assert (status, json.loads(answer)) == (404, {"error": "Invoice not found"})
    injected = {"invoice": "1 OR 1=1", "method": "card"}
    status, _ = await site.app_post("/app/api/pay", init, injected)
    assert status == 400

    # ...and once paid, neither the Mini App nor Telegram's pre-checkout takes it again.
    async with site.gateway.transaction() as billing:
        await billing.record_payment(
            account_id, invoice.id, currency="EUR", total_amount=2000, charge_id="ch-720"
        )
    status, answer = await site.app_post("/app/api/pay", init, body)
    assert (status, json.loads(answer)) == (
        409,
        {"error": "This invoice is paid: there is nothing to pay."},
    )
    assert len(site.fake.calls_of("createInvoiceLink")) == 1
    calls = await site.driver.feed(site.fake.pre_checkout(user, "EUR", 2000, invoice.payload))
    assert [c["ok"] for c in calls if c.method == "answerPreCheckoutQuery"] == [False]
    status, html = await site.app_get("/app/api/cabinet", init)
    assert "€20.00 · paid" in text_of(html)
    assert "data-pay=" not in html  # a paid invoice shows no pay button


async def test_pay_needs_the_profile_paying_needs(site: WebSite) -> None:
    user, account_id = await site.customer(722, profile=False)
    async with site.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
    body = {"invoice": invoice.id, "method": "card"}
    status, answer = await site.app_post("/app/api/pay", site.init(user.id), body)
    assert status == 409
    assert json.loads(answer)["error"].startswith("Before paying, please fill in: last name")
    body["method"] = "paypal"
    assert (await site.app_post("/app/api/pay", site.init(user.id), body))[0] == 409
    assert site.fake.calls_of("createInvoiceLink") == []


# ---- the shell, headers -----------------------------------------------------------------------
def assert_security_headers(headers: Any, *, framed_by_telegram: bool, cache: str) -> None:
    csp = headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp
    assert "script-src 'self' https://telegram.org;" in csp
    assert "object-src 'none'" in csp and "base-uri 'none'" in csp
    assert "form-action 'self' https://t.me;" in csp  # the pay form's redirect to Telegram
    ancestors = "https://web.telegram.org" if framed_by_telegram else "'none'"
    assert csp.endswith(f"frame-ancestors {ancestors}")
    assert headers["X-Content-Type-Options"] == "nosniff"
    assert headers["Referrer-Policy"] == "no-referrer"
    assert headers["Cache-Control"] == cache
    assert headers.get("X-Frame-Options") == (None if framed_by_telegram else "DENY")


async def test_security_headers_on_every_web_response(site: WebSite) -> None:
    user, _ = await site.customer(730)
    for path, init, status in [
        ("/app", None, 200),
        ("/app/api/cabinet", site.init(user.id), 200),
        ("/app/api/cabinet", None, 401),
        ("/app/nothing-here", None, 404),
        ("/pay/forged", None, 400),
        ("/login", None, 200),
        ("/cabinet", None, 200),  # redirected to /login, which is checked too
    ]:
        headers = {"X-Telegram-Init-Data": init} if init else {}
        async with site.client.get(path, headers=headers) as response:
            assert response.status == status, path
            assert_security_headers(
                response.headers, framed_by_telegram=path.startswith("/app"), cache="no-store"
            )
    async with site.client.get("/app/static/app.js") as response:
        assert response.status == 200
        assert_security_headers(
            response.headers, framed_by_telegram=True, cache="public, max-age=3600"
        )


async def test_the_shell_loads_telegrams_script_and_ours(site: WebSite) -> None:
    async with site.client.get("/app", headers={"Accept-Language": "ru-RU,ru;q=0.9"}) as response:
        html = await response.text()
    assert response.status == 200
    assert '<html lang="ru">' in html
    assert '<script src="https://telegram.org/js/telegram-web-app.js"></script>' in html
    assert '<script src="/app/static/app.js" defer></script>' in html
    assert "Загрузка…" in html
    assert "<script>" not in html  # nothing inline: the CSP allows no inline script
