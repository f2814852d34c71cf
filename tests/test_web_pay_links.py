"""Pay links (issue 17, item 3) over real HTTP, on SQLite and PostgreSQL: the invoice screen in
the chat carries PUBLIC_URL/pay/<token>, HMAC-signed over the purpose, the invoice, its account
and an expiry; "payment without authorization" decides whether it opens without a login; the
page offers the bot's own Telegram invoice and shows the status; a paid invoice is not paid
twice."""

from __future__ import annotations

import base64
from collections.abc import AsyncIterator
from html import unescape

import pytest
from sqlalchemy import update

from keyboards.payments import InvoiceAction, InvoiceCb
from services.embedded import models as m
from services.web_auth import sign_pay_token, sign_token
from tests.harness.telegram import FakeTelegram
from tests.harness.web import PUBLIC_URL, WEB_SECRET, WebSite, web_site
from tests.test_web_cabinet import text_of

SECRET = WEB_SECRET.encode()
DAY = 86400


@pytest.fixture
async def site(database_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[WebSite]:
    async with web_site(database_url, fake_telegram) as s:
        yield s


async def invoice_of(site: WebSite, account_id: int, amount: int = 2000) -> tuple[int, str]:
    async with site.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, amount, "EUR")
    return invoice.id, invoice.number


async def chat_pay_link(
    site: WebSite, user_id: int, invoice_id: int, label: str = "🌐 Pay in browser"
) -> str:
    """The "Pay in browser" button of the invoice's screen in the chat."""
    user = site.driver.user(user_id)
    menu = site.fake.last_sent(user_id)
    calls = await site.driver.press(
        user, menu, InvoiceCb(action=InvoiceAction.VIEW, invoice_id=invoice_id).pack()
    )
    screen = [c for c in calls if c.method in ("sendMessage", "editMessageText")][-1]
    urls = [b["url"] for row in screen.buttons() for b in row if b["text"] == label]
    assert len(urls) == 1, screen.button_texts()
    return urls[0]


def path_of(url: str) -> str:
    assert url.startswith(PUBLIC_URL + "/pay/"), url
    return url.removeprefix(PUBLIC_URL)


async def get(site: WebSite, path: str, **headers: str) -> tuple[int, str]:
    async with site.client.get(path, headers=headers) as response:
        return response.status, text_of(await response.text())


async def test_the_chats_link_opens_the_invoice_with_the_setting_on(site: WebSite) -> None:
    user, account_id = await site.customer(801, pay_without_auth=True)
    invoice_id, number = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    assert await get(site, path) == (
        200,
        f"Invoice No. {number} Amount: €20.00 Status: unpaid "
        "Pay by card in Telegram Pay with Telegram Stars",
    )
    async with site.client.post(path + "/card", allow_redirects=False) as response:
        assert response.status == 303
        assert response.headers["Location"] == f"https://t.me/$invoice-inv-{invoice_id}"
    (link,) = site.fake.calls_of("createInvoiceLink")
    assert (link["payload"], link["currency"], link["prices"][0]["amount"]) == (
        f"inv:{invoice_id}",
        "EUR",
        2000,
    )
    async with site.client.post(path + "/stars", allow_redirects=False) as response:
        assert response.status == 303
    assert site.fake.calls_of("createInvoiceLink")[-1]["currency"] == "XTR"


async def test_with_the_setting_off_the_link_asks_to_log_in(site: WebSite) -> None:
    user, account_id = await site.customer(802, pay_without_auth=False)
    invoice_id, _ = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    expected = (
        403,
        "Log in to pay Payment without authorization is off for this account. Log in first, or "
        "pay the invoice in the bot. Log in Open the bot",
    )
    assert await get(site, path) == expected
    async with site.client.post(path + "/card", allow_redirects=False) as response:
        assert response.status == 403
    assert site.fake.calls_of("createInvoiceLink") == []
    # Turned on in the Settings: the same link opens the invoice.
    async with site.gateway.transaction() as billing:
        await billing.set_flag(account_id, "pay_without_auth", True)
    assert (await get(site, path))[0] == 200


async def test_a_tampered_or_foreign_link_opens_nothing(site: WebSite) -> None:
    _, alice = await site.customer(803, pay_without_auth=True)
    _, bob = await site.customer(804, pay_without_auth=True)
    alice_invoice, _ = await invoice_of(site, alice)
    bob_invoice, _ = await invoice_of(site, bob)
    expires = int(site.now) + DAY
    good = sign_pay_token(SECRET, alice_invoice, alice, expires)
    assert (await get(site, f"/pay/{good}"))[0] == 200

    body, mac = good.split(".")
    other_body = base64.urlsafe_b64encode(f"pay:{bob_invoice}:{bob}:{expires}".encode())
    flipped = mac[:-2] + ("A" if mac[-2] != "A" else "B") + mac[-1]
    invalid = (
        400,
        "Invalid link This link is damaged or not valid. Open the invoice in the bot to get a "
        "working one. Open the bot",
    )
    for token in [
        f"{body}.{flipped}",  # the signature changed
        f"{other_body.decode().rstrip('=')}.{mac}",  # another invoice under this signature
        body,  # no signature
        sign_pay_token(b"another key of at least thirty-two bytes", alice_invoice, alice, expires),
        sign_token(SECRET, "login", alice_invoice, alice, expires),  # signed for another purpose
        "%E2%98%83.%E2%98%83",
        "a" * 300,
    ]:
        assert await get(site, f"/pay/{token}") == invalid, token
    # Signed, but naming Bob's account with Alice's invoice: the billing finds no such invoice.
    foreign = sign_pay_token(SECRET, alice_invoice, bob, expires)
    assert await get(site, f"/pay/{foreign}") == (
        404,
        "Invoice not found This invoice does not exist. Open your invoices in the bot. "
        "Open the bot",
    )
    async with site.client.post(f"/pay/{foreign}/card", allow_redirects=False) as response:
        assert response.status == 404
    assert site.fake.calls_of("createInvoiceLink") == []


async def test_an_expired_link_says_so(site: WebSite) -> None:
    user, account_id = await site.customer(805, pay_without_auth=True)
    invoice_id, _ = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    expired = (
        410,
        "The link has expired This pay link is no longer valid. Open the invoice in the bot to "
        "get a new one. Open the bot",
    )
    # WEB_PAY_LINK_DAYS (30) whole days from today: valid on the 30th day, gone after the 31st.
    today = int(site.now) // DAY * DAY
    site.set_clock(today + 31 * DAY - 1)
    assert (await get(site, path))[0] == 200
    site.set_clock(today + 31 * DAY)
    assert await get(site, path) == expired
    async with site.client.post(path + "/card", allow_redirects=False) as response:
        assert response.status == 410
    assert site.fake.calls_of("createInvoiceLink") == []


async def test_a_paid_invoice_offers_nothing_to_pay(site: WebSite) -> None:
    user, account_id = await site.customer(806, pay_without_auth=True)
    invoice_id, number = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    async with site.gateway.transaction() as billing:
        await billing.record_payment(
            account_id, invoice_id, currency="EUR", total_amount=2000, charge_id="ch-806"
        )
    assert await get(site, path) == (
        200,
        f"Invoice No. {number} Amount: €20.00 Status: paid This invoice is paid. Thank you!",
    )
    async with site.client.post(path + "/card", allow_redirects=False) as response:
        assert response.status == 409
        assert "This invoice is paid: there is nothing to pay." in text_of(await response.text())
    assert site.fake.calls_of("createInvoiceLink") == []
    # Telegram's pre-checkout for it (an invoice link opened earlier) is refused by the bot.
    calls = await site.driver.feed(site.fake.pre_checkout(user, "EUR", 2000, f"inv:{invoice_id}"))
    assert [c["ok"] for c in calls if c.method == "answerPreCheckoutQuery"] == [False]


async def test_the_pay_page_in_russian_and_the_payment_gate(site: WebSite) -> None:
    user, account_id = await site.customer(
        807, language="ru", pay_without_auth=True, city=None, email=None
    )
    invoice_id, number = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id, "🌐 Оплатить в браузере"))
    status, page = await get(site, path)
    assert (status, page) == (
        200,
        f"Счёт № {number} Сумма: 20,00 € Статус: не оплачен "
        "Оплатить картой в Telegram Оплатить в Telegram Stars",
    )
    async with site.client.post(path + "/card", allow_redirects=False) as response:
        assert response.status == 409
        assert "Перед оплатой заполните: e-mail, город." in text_of(await response.text())
    assert site.fake.calls_of("createInvoiceLink") == []


async def test_telegram_refusing_the_invoice_link_is_a_page_not_a_crash(site: WebSite) -> None:
    user, account_id = await site.customer(808, pay_without_auth=True)
    invoice_id, _ = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    site.fake.fail_next("createInvoiceLink", 400, "Bad Request: PAYMENT_PROVIDER_INVALID")
    async with site.client.post(path + "/card", allow_redirects=False) as response:
        assert response.status == 502
        assert "Telegram could not open this payment. Please try another way to pay." in text_of(
            await response.text()
        )


async def test_the_link_changes_nothing_it_does_not_name(site: WebSite) -> None:
    """The page reads; the account and the invoice are as they were."""
    user, account_id = await site.customer(809, pay_without_auth=True)
    invoice_id, _ = await invoice_of(site, account_id)
    path = path_of(await chat_pay_link(site, user.id, invoice_id))
    await get(site, path)
    async with site.client.post(path + "/card", allow_redirects=False):
        pass
    async with site.gateway.transaction() as billing:
        invoice = await billing.get_invoice(account_id, invoice_id)
        assert (invoice.status, (await billing.get_account(account_id)).balance_minor) == (
            "unpaid",
            0,
        )
        await billing.session.execute(
            update(m.Account).where(m.Account.id == account_id).values(pay_without_auth=False)
        )
    assert unescape((await get(site, path))[1]).startswith("Log in to pay")
