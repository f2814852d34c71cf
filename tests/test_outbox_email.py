"""Alerts of customers who blocked the bot go by e-mail (services/outbox_email.py): the real
alert job queues the alert, the sender gets 403 from the Telegram stand-in, and the e-mail
reaches an in-process SMTP server (aiosmtpd) — once, in the customer's language, on SQLite and
on PostgreSQL; without SMTP or a confirmed address the alert is dropped as before; an SMTP
outage is retried with a backoff and given up on in the end."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import timedelta

import pytest
from aiogram import Bot
from aiosmtpd.controller import Controller
from sqlalchemy import select, update

import keyboards.alerts as alert_kb
from bot.factory import create_bot, create_dispatcher, create_gateway
from bot.scheduler import add_jobs, create_scheduler
from services.alerts import scan_expiring, scan_low_balance
from services.billing import per_call
from services.contracts.alerts import EmailCopy, OutgoingMessage
from services.email import Mailer, SmtpMailer, UnconfiguredMailer, plain_text
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.outbox import OutboxSender
from services.outbox_email import OutboxMailer
from services.whmcs.gateway import WhmcsGateway
from tests.conftest import make_settings
from tests.harness.server import free_port
from tests.harness.session import RecordingSession
from tests.harness.smtp import Inbox, body
from tests.harness.telegram import FakeTelegram
from tests.harness.whmcs import WhmcsStandIn
from tests.test_alerts import I18N, NOW, POLICY, add_order, low, new_account
from tests.test_outbox import FakeClock
from tests.whmcs_fixtures import linked_account

RU_BODY = (
    "⚠️ Низкий баланс\n"
    "На балансе 5,00\xa0€ — меньше порога 10,00\xa0€, о котором вы просили предупредить.\n\n"
    "Пополните баланс, чтобы услуги продолжали работать.\n\n"
    "—\n"
    "Это письмо пришло на e-mail, потому что бот не может написать вам в Telegram: он "
    "заблокирован или аккаунт Telegram удалён. Разблокируйте бота, чтобы снова получать "
    "уведомления там и пользоваться кнопками."
)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()  # 2027-03-10 12:00 UTC, the alert tests' NOW: no quiet hours


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    yield create_bot(make_settings("sqlite+aiosqlite://"), session=RecordingSession(fake_telegram))


def smtp_mailer(port: int) -> SmtpMailer:
    return SmtpMailer("127.0.0.1", port, "Billing <billing@example.com>", tls="none", timeout=5)


def sender(
    gateway: EmbeddedGateway, bot: Bot, clock: FakeClock, mailer: Mailer | None, owner: str = "s1"
) -> OutboxSender:
    return OutboxSender(gateway, bot, clock=clock, sleep=clock.sleep, owner=owner, mailer=mailer)


async def blocked_customer(
    gateway: EmbeddedGateway,
    fake: FakeTelegram,
    telegram_id: int,
    *,
    email: str | None = "ivan@example.com",
    confirmed: bool = True,
    language: str = "ru",
) -> int:
    """A customer below their low-balance threshold who blocked the bot, with the alert
    queued by the real job (the chat was reachable when it ran)."""
    account_id = await new_account(
        gateway, telegram_id, balance=500, threshold=1000, language=language
    )
    async with gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Account)
            .where(m.Account.id == account_id)
            .values(email=email, email_confirmed=confirmed)
        )
    assert (await low(gateway)).alerts == 1
    fake.block_bot(telegram_id)
    return account_id


async def outbox(gateway: EmbeddedGateway) -> list[m.OutboxMessage]:
    async with gateway.transaction() as billing:
        rows = await billing.session.scalars(select(m.OutboxMessage).order_by(m.OutboxMessage.id))
        return list(rows)


async def test_an_alert_for_a_blocked_bot_goes_by_email_once(
    gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    await blocked_customer(gateway, fake_telegram, 9101)
    report = await sender(gateway, bot, clock, smtp_mailer(port)).tick(budget=5)
    assert (report.sent, report.unreachable, report.emailed) == (0, 1, 1)
    assert [c.error.status for c in fake_telegram.calls if c.error] == [403]
    [(mail_from, rcpt, message)] = inbox.messages
    assert (mail_from, rcpt) == ("billing@example.com", ["ivan@example.com"])
    assert message["Subject"] == "На балансе заканчиваются средства"
    assert body(message).rstrip("\n") == RU_BODY
    [row] = await outbox(gateway)
    assert (row.status, row.attempts, row.sent_at, row.locked_until) == (
        "emailed",
        1,
        clock.dt(),
        None,
    )
    assert (await sender(gateway, bot, clock, smtp_mailer(port)).tick(budget=5)).emailed == 0
    # A restart (a new sender, another owner) after every claim has expired: nothing again.
    clock.now += 3600
    again = await sender(gateway, bot, clock, smtp_mailer(port), owner="s2").tick(budget=5)
    assert (again.sent, again.emailed) == (0, 0)
    assert len(inbox.messages) == 1
    assert len([c for c in fake_telegram.calls if c.params.get("chat_id") == 9101]) == 1


async def test_an_alert_queued_after_the_chat_was_marked_unreachable_goes_by_email(
    gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    await blocked_customer(gateway, fake_telegram, 9111, language="en")
    async with gateway.transaction() as billing:
        await billing.set_chat_reachable(9111, False)  # another sender's 403 came first
    report = await sender(gateway, bot, clock, smtp_mailer(port)).tick(budget=5)
    assert report.emailed == 1
    assert fake_telegram.calls_of("sendMessage") == []  # no call to a chat known unreachable
    [(_, _, message)] = inbox.messages
    assert message["Subject"] == "Your balance is running low"
    assert body(message).startswith(
        "⚠️ Low balance\nYour balance is €5.00, below the €10.00 you asked to be warned about."
    )
    assert [row.status for row in await outbox(gateway)] == ["emailed"]


async def long_blocked_customer(
    gateway: EmbeddedGateway, telegram_id: int, *, confirmed: bool = True
) -> int:
    """A customer below their threshold, with an order expiring in 3 days, who blocked the
    bot before any alert was due (the chat is already known unreachable)."""
    account_id = await new_account(gateway, telegram_id, balance=500, threshold=1000)
    await add_order(gateway, account_id, NOW + timedelta(days=2, hours=12))
    async with gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Account)
            .where(m.Account.id == account_id)
            .values(email="ivan@example.com", email_confirmed=confirmed)
        )
        await billing.set_chat_reachable(telegram_id, False)
    return account_id


async def test_alerts_due_after_the_customer_blocked_the_bot_go_by_email(
    gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    smtp: tuple[Inbox, int],
) -> None:
    """Not only the alert that met the 403: the scans keep telling a customer who blocked
    the bot long ago, by e-mail, when SMTP is set (the policy says so) and the e-mail is
    confirmed; each alert once."""
    inbox, port = smtp
    await long_blocked_customer(gateway, 9151)
    await long_blocked_customer(gateway, 9152, confirmed=False)
    policy = replace(POLICY, email_unreachable=True)
    low_report = await scan_low_balance(gateway, I18N, policy, NOW, keyboards=alert_kb)
    expiry_report = await scan_expiring(gateway, I18N, policy, NOW, keyboards=alert_kb)
    assert (low_report.alerts, expiry_report.alerts) == (1, 1)  # not the unconfirmed one
    report = await sender(gateway, bot, clock, smtp_mailer(port)).tick(budget=5)
    assert report.emailed == 2
    assert fake_telegram.calls_of("sendMessage") == []
    subjects = sorted(message["Subject"] for _, _, message in inbox.messages)
    assert subjects == ["Order expiry notice", "Your balance is running low"]
    assert [row.status for row in await outbox(gateway)] == ["emailed", "emailed"]
    again = await scan_low_balance(gateway, I18N, policy, NOW, keyboards=alert_kb)
    assert again.alerts == 0
    assert (await scan_expiring(gateway, I18N, policy, NOW, keyboards=alert_kb)).alerts == 0


async def test_without_smtp_the_scans_skip_customers_who_blocked_the_bot(
    gateway: EmbeddedGateway,
) -> None:
    await long_blocked_customer(gateway, 9161)
    assert not POLICY.email_unreachable
    assert (await scan_low_balance(gateway, I18N, POLICY, NOW, keyboards=alert_kb)).alerts == 0
    assert (await scan_expiring(gateway, I18N, POLICY, NOW, keyboards=alert_kb)).alerts == 0
    assert await outbox(gateway) == []


@pytest.mark.parametrize(
    ("email", "confirmed"),
    [("ivan@example.com", False), (None, False)],
    ids=["unconfirmed", "none"],
)
async def test_without_a_confirmed_email_the_alert_is_dropped_as_before(
    sqlite_gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    smtp: tuple[Inbox, int],
    email: str | None,
    confirmed: bool,
) -> None:
    inbox, port = smtp
    await blocked_customer(sqlite_gateway, fake_telegram, 9121, email=email, confirmed=confirmed)
    report = await sender(sqlite_gateway, bot, clock, smtp_mailer(port)).tick(budget=5)
    assert (report.unreachable, report.emailed) == (1, 0)
    assert inbox.messages == []
    [row] = await outbox(sqlite_gateway)
    assert (row.status, row.error) == ("unreachable", "no confirmed e-mail")


@pytest.mark.parametrize("mailer", [None, UnconfiguredMailer()], ids=["no-mailer", "no-smtp"])
async def test_without_smtp_the_alert_is_dropped_as_before(
    sqlite_gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    mailer: Mailer | None,
) -> None:
    await blocked_customer(sqlite_gateway, fake_telegram, 9131)
    out = sender(sqlite_gateway, bot, clock, mailer)
    assert out.emails is None
    report = await out.tick(budget=5)
    assert (report.unreachable, report.emailed) == (1, 0)
    [row] = await outbox(sqlite_gateway)
    assert (row.status, row.error) == ("unreachable", "Forbidden: bot was blocked by the user")


async def test_rows_that_are_not_alerts_keep_todays_behaviour(
    sqlite_gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    await blocked_customer(sqlite_gateway, fake_telegram, 9141)
    async with sqlite_gateway.transaction() as billing:  # a receipt, a ticket reply, a screen
        await billing.enqueue_message(9141, "sendMessage", {"text": "✅ Paid"})
    report = await sender(sqlite_gateway, bot, clock, smtp_mailer(port)).tick(budget=5)
    assert report.emailed == 1
    assert [row.status for row in await outbox(sqlite_gateway)] == ["emailed", "unreachable"]
    assert len(inbox.messages) == 1


async def test_smtp_down_is_retried_with_a_backoff_and_then_sent(
    gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    port = free_port()  # nothing listens there yet
    await blocked_customer(gateway, fake_telegram, 9151)
    out = sender(gateway, bot, clock, smtp_mailer(port))
    with caplog.at_level(logging.WARNING):
        report = await out.tick(budget=5)
    assert (report.unreachable, report.emailed) == (1, 0)
    assert not [r for r in caplog.records if r.exc_info]  # logged in one line, no traceback
    [row] = await outbox(gateway)
    assert (row.status, row.attempts, row.locked_until) == ("email_pending", 1, None)
    assert row.error is not None and row.error.startswith("e-mail: ")
    assert row.not_before == clock.dt() + timedelta(seconds=60)
    # Not before the backoff is over, even once the server is up.
    inbox = Inbox()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        clock.now += 30
        assert (await out.tick(budget=5)).emailed == 0
        clock.now += 30
        assert (await out.tick(budget=5)).emailed == 1
    finally:
        controller.stop()
    assert len(inbox.messages) == 1
    [row] = await outbox(gateway)
    assert (row.status, row.attempts, row.error) == ("emailed", 2, None)


async def test_an_email_that_keeps_failing_is_given_up_and_logged(
    sqlite_gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    await blocked_customer(sqlite_gateway, fake_telegram, 9161)
    await sender(sqlite_gateway, bot, clock, None).drain()  # 403: the row is closed...
    [row] = await outbox(sqlite_gateway)
    assert row.status == "unreachable"
    async with sqlite_gateway.transaction() as billing:  # ... had SMTP been configured
        await billing.session.execute(update(m.OutboxMessage).values(status="email_pending"))
    mails = OutboxMailer(
        sqlite_gateway, smtp_mailer(free_port()), owner="m", clock=clock, max_attempts=3
    )
    with caplog.at_level(logging.WARNING):
        for wait in (0, 60, 120):
            clock.now += wait
            report = await mails.send_due()
    assert (report.failed, report.emailed) == (1, 0)
    [row] = await outbox(sqlite_gateway)
    assert (row.status, row.attempts) == ("failed", 3)
    assert any("given up after 3 attempts" in r.getMessage() for r in caplog.records)
    assert not [r for r in caplog.records if r.exc_info]
    clock.now += 3600
    assert (await mails.send_due()).failed == 0  # never taken again


async def test_two_instances_send_each_email_once(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram, clock: FakeClock, smtp: tuple[Inbox, int]
) -> None:
    inbox, port = smtp
    for i in range(6):
        await blocked_customer(gateway, fake_telegram, 9170 + i, email=f"c{i}@example.com")
    async with gateway.transaction() as billing:
        await billing.session.execute(update(m.OutboxMessage).values(status="email_pending"))
    one = OutboxMailer(gateway, smtp_mailer(port), owner="one", clock=clock, batch_size=2)
    two = OutboxMailer(gateway, smtp_mailer(port), owner="two", clock=clock, batch_size=2)
    first, second = await asyncio.gather(one.send_due(), two.send_due())
    assert first.emailed + second.emailed == 6
    assert sorted(rcpt[0] for _, rcpt, _ in inbox.messages) == [
        f"c{i}@example.com" for i in range(6)
    ]


async def test_with_whmcs_the_email_is_the_clients_address_confirmed_in_the_bot(
    whmcs_gateway: WhmcsGateway,
    whmcs: WhmcsStandIn,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    smtp: tuple[Inbox, int],
) -> None:
    inbox, port = smtp
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    account = await linked_account(whmcs_gateway, 9181, alice)
    billing = per_call(whmcs_gateway)
    code = await billing.start_email_confirmation(account.id)
    assert (await billing.confirm_code(account.id, "email", code)).status == "ok"
    alert = OutgoingMessage(
        9181,
        {"text": "⚠️ <b>Low balance</b>"},
        idempotency_key="alert:low_balance:test",
        account_id=account.id,
        email=EmailCopy("Your balance is running low", "Low balance"),
    )
    async with whmcs_gateway.transaction() as store:
        await store.enqueue_messages([alert, replace(alert, idempotency_key="alert:again")])
    fake_telegram.block_bot(9181)
    out = OutboxSender(
        whmcs_gateway,
        bot,
        clock=clock,
        sleep=clock.sleep,
        owner="w",
        mailer=smtp_mailer(port),
    )
    assert (await out.drain()).unreachable == 1
    assert out.emails is not None
    one = await out.emails.send_due()
    assert (one.emailed, one.dropped) == (2, 0)
    assert [rcpt for _, rcpt, _ in inbox.messages] == [["alice@example.com"]] * 2
    # Changed in WHMCS's admin area: not confirmed in the bot, so not e-mailed.
    alice.email = "changed@in.whmcs.example.com"
    whmcs_gateway.core._client_changed(alice.id)  # type: ignore[attr-defined]
    async with whmcs_gateway.transaction() as store:
        await store.enqueue_messages([replace(alert, idempotency_key="alert:third")])
    async with whmcs_gateway.local.transaction() as local:
        await local.session.execute(
            update(m.OutboxMessage)
            .where(m.OutboxMessage.idempotency_key == "alert:third")
            .values(status="email_pending")
        )
    assert (await out.emails.send_due()).dropped == 1
    assert len(inbox.messages) == 2


@pytest.mark.parametrize("smtp_host", ["127.0.0.1", None], ids=["smtp", "no-smtp"])
async def test_the_scheduled_sender_gets_the_dispatchers_mailer(
    sqlite_url: str, smtp_host: str | None
) -> None:
    settings = make_settings(sqlite_url, smtp_host=smtp_host, smtp_tls="none")
    gateway = create_gateway(settings)
    try:
        dp = create_dispatcher(settings, gateway)
        jobs = add_jobs(
            create_scheduler(settings), settings, gateway, create_bot(settings), I18N, dispatcher=dp
        )
        assert (jobs.sender.emails is not None) is (smtp_host is not None)
        assert jobs.policy.email_unreachable is (smtp_host is not None)
    finally:
        await gateway.close()


def test_plain_text_of_telegram_html() -> None:
    html = (
        "⚠️ <b>Low</b> &amp; <i>slow</i>: 5 &lt; 10\n"
        '<a href="https://example.com/pay">Pay</a> <code>#12</code>\n\n\n\nEnd'
    )
    assert plain_text(html) == "⚠️ Low & slow: 5 < 10\nPay (https://example.com/pay) #12\n\nEnd"
