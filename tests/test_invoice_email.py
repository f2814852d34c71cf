"""A new top-up invoice is e-mailed (handlers/invoice_email.py) through the real dispatcher to
an in-process SMTP server: to the e-mail for invoices, else the confirmed e-mail, with a pay
link that the web side accepts while PUBLIC_URL is set; once per invoice; never with WHMCS or
without an address; an SMTP outage changes nothing in the chat."""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from typing import Any

import pytest

from bot.factory import create_bot, create_dispatcher, create_gateway
from handlers.web_links import PAY_PATH, signing_key
from services.web_auth import verify_pay_token
from tests.conftest import make_settings
from tests.harness.driver import BotDriver
from tests.harness.server import free_port
from tests.harness.session import RecordingSession
from tests.harness.smtp import Inbox, body
from tests.harness.telegram import FakeTelegram
from tests.test_payments_handlers import customer, open_amount_prompt, screen

PUBLIC_URL = "https://cabinet.example.com"


def mail_settings(url: str, port: int, **values: Any) -> Any:
    return make_settings(
        url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        smtp_from="Billing <billing@example.com>",
        **values,
    )


@pytest.fixture
async def invoice_driver(
    sqlite_url: str, fake_telegram: FakeTelegram, smtp: tuple[Inbox, int]
) -> AsyncIterator[BotDriver]:
    settings = mail_settings(sqlite_url, smtp[1], public_url=PUBLIC_URL)
    gateway = create_gateway(settings)
    await gateway.seed_demo()
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    driver = BotDriver(create_dispatcher(settings, gateway), bot, fake_telegram, gateway)
    yield driver
    driver.close()
    await gateway.close()


async def top_up(driver: BotDriver, user_id: int, amount: str = "25", **values: Any) -> Any:
    user, account_id = await customer(driver, user_id, **values)
    await open_amount_prompt(driver, user, "EUR")
    invoice = screen(await driver.send(user, amount))
    assert (invoice.text or "").startswith("🧾 <b>"), invoice.text
    return user, account_id


async def test_a_new_invoice_goes_to_the_email_for_invoices_with_its_pay_link(
    invoice_driver: BotDriver, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    user, account_id = await top_up(invoice_driver, 7301, email_invoices="books@example.com")
    [(mail_from, rcpt, message)] = inbox.messages
    assert (mail_from, rcpt) == ("billing@example.com", ["books@example.com"])
    assert message["Subject"].startswith("Invoice No. ")
    text = body(message)
    assert "Amount: €25.00" in text and "Status: unpaid" in text
    assert "<b>" not in text
    [link] = [line.split(": ", 1)[1] for line in text.splitlines() if line.startswith("Pay it")]
    assert link.startswith(f"{PUBLIC_URL}{PAY_PATH}/")
    secret = signing_key(invoice_driver.dp["settings"])
    claim = verify_pay_token(secret, link.rsplit("/", 1)[1], now=time.time())
    assert claim.account_id == account_id
    number = message["Subject"].removeprefix("Invoice No. ")
    # The same top-up again shows that invoice: no second e-mail.
    await open_amount_prompt(invoice_driver, user, "EUR")
    again = screen(await invoice_driver.send(user, "25"))
    assert f"Invoice No. {number}</b>" in (again.text or "")
    assert len(inbox.messages) == 1
    # Another amount is another invoice: e-mailed too.
    await open_amount_prompt(invoice_driver, user, "EUR")
    screen(await invoice_driver.send(user, "40"))
    assert len(inbox.messages) == 2
    assert "Amount: €40.00" in body(inbox.messages[1][2])


async def test_in_russian_to_the_confirmed_email(
    invoice_driver: BotDriver, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    await top_up(invoice_driver, 7302, language="ru", amount="30", email_confirmed=True)
    [(_, rcpt, message)] = inbox.messages
    assert rcpt == ["ivan@example.com"]
    assert message["Subject"].startswith("Счёт № ")
    assert "Здравствуйте!" in body(message)


async def test_no_address_no_email(invoice_driver: BotDriver, smtp: tuple[Inbox, int]) -> None:
    inbox, _ = smtp
    await top_up(invoice_driver, 7303)  # an unconfirmed e-mail and none for invoices
    assert inbox.messages == []


async def test_an_smtp_outage_is_logged_and_the_chat_goes_on(
    invoice_driver: BotDriver, smtp: tuple[Inbox, int], caplog: pytest.LogCaptureFixture
) -> None:
    inbox, _ = smtp
    invoice_driver.dp["mailer"].port = free_port()  # nobody listens there
    with caplog.at_level(logging.WARNING, logger="handlers.invoice_email"):
        await top_up(invoice_driver, 7304, email_invoices="books@example.com")
    assert inbox.messages == []
    assert any("was not e-mailed" in r.getMessage() for r in caplog.records)


async def test_with_whmcs_the_billing_sends_its_own(sqlite_url: str) -> None:
    from handlers.invoice_email import email_new_invoice

    class Refusing:
        async def send(self, to: str, subject: str, body: str) -> None:
            raise AssertionError("no e-mail with WHMCS")

    settings = mail_settings(
        sqlite_url,
        25,
        billing="whmcs",
        whmcs_url="https://whmcs.example.com/includes/api.php",
        whmcs_identifier="identifier",
        whmcs_secret="secret",
    )
    await email_new_invoice(None, None, settings, Refusing(), None)  # type: ignore[arg-type]
