"""E-mail: the aiosmtplib sender against a real in-process SMTP server (aiosmtpd), and the
e-mail confirmation of Settings end to end through the dispatcher."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest
from sqlalchemy import select

from bot.factory import create_bot, create_dispatcher
from services.email import EmailError, EmailNotConfigured, SmtpMailer, UnconfiguredMailer
from services.embedded import models as m
from tests.conftest import _gateway, make_settings
from tests.harness.driver import BotDriver
from tests.harness.server import free_port
from tests.harness.session import RecordingSession
from tests.harness.smtp import Inbox, body
from tests.harness.telegram import Call, FakeTelegram, User


@pytest.fixture
async def mail_driver(
    sqlite_url: str, fake_telegram: FakeTelegram, smtp: tuple[Inbox, int]
) -> AsyncIterator[BotDriver]:
    """The production dispatcher with SMTP_* settings pointing at the local server."""
    _, port = smtp
    settings = make_settings(
        sqlite_url,
        smtp_host="127.0.0.1",
        smtp_port=port,
        smtp_tls="none",
        smtp_from="Billing <billing@example.com>",
    )
    gw = await _gateway(sqlite_url)
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    drv = BotDriver(create_dispatcher(settings, gw), bot, fake_telegram, gw)
    yield drv
    drv.close()
    await gw.close()


# ---- the sender ---------------------------------------------------------------------------------
async def test_smtp_mailer_delivers_a_plain_text_message(smtp: tuple[Inbox, int]) -> None:
    inbox, port = smtp
    mailer = SmtpMailer("127.0.0.1", port, "Billing <billing@example.com>", tls="none")
    await mailer.send("jane@example.com", "Привет", "Line one\nСтрока два")
    assert len(inbox.messages) == 1
    mail_from, rcpt, message = inbox.messages[0]
    assert (mail_from, rcpt) == ("billing@example.com", ["jane@example.com"])
    assert message["Subject"] == "Привет"
    assert message["To"] == "jane@example.com"
    assert message["From"] == "Billing <billing@example.com>"
    assert message["Message-ID"].endswith("@example.com>")
    assert body(message) == "Line one\nСтрока два\n"


async def test_smtp_failure_raises_and_never_logs_the_body(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mailer = SmtpMailer("127.0.0.1", free_port(), "billing@example.com", tls="none", timeout=5)
    with caplog.at_level(logging.DEBUG), pytest.raises(EmailError):
        await mailer.send("jane@example.com", "Code", "secret code 123456")
    assert "123456" not in caplog.text
    assert "jane@example.com" not in caplog.text  # the recipient is logged masked
    assert "e-mail to j***@example.com not sent: SMTPConnectError" in caplog.text


async def test_unconfigured_mailer_refuses() -> None:
    with pytest.raises(EmailNotConfigured):
        await UnconfiguredMailer().send("jane@example.com", "s", "b")


def test_tls_mode_is_checked() -> None:
    with pytest.raises(ValueError):
        SmtpMailer("h", 25, "a@b.c", tls="maybe")


# ---- e-mail confirmation through the bot -----------------------------------------------------
TEXTS = {
    "en": {
        "btn": "✏️ E-mail",
        "sent": "✅ E-mail saved: <b>jane@example.com</b>\n\n📨 We sent a 6-digit code to "
        "jane@example.com. Send it here to confirm the address; it is valid for 15 minutes.\n\n"
        "/cancel — leave without changes.",
        "buttons": ["🔄 Send a new code", "✖️ Cancel"],
        "subject": "Your e-mail confirmation code",
        "body": "Hello!\n\nYour code to confirm this e-mail address in the billing bot: {code}\n"
        "It is valid for 15 minutes. If you did not ask for it, ignore this e-mail.\n",
        "wrong": "❌ Wrong code. Attempts left: 4.",
        "ok": "✅ E-mail confirmed: <b>jane@example.com</b>",
        "status": "E-mail: <b>jane@example.com (confirmed)</b>",
        "cooldown": "Too many attempts. Please try again in ",
        "invalid": "❌ This does not look like an e-mail address (example: name@example.com).\n"
        "Nothing was saved. Send another value or /cancel.",
    },
    "ru": {
        "btn": "✏️ E-mail",
        "sent": "✅ E-mail — сохранено: <b>jane@example.com</b>\n\n📨 Мы отправили 6-значный "
        "код на jane@example.com. Пришлите его сюда, чтобы подтвердить адрес; код действует 15 "
        "мин.\n\n/cancel — выйти без изменений.",
        "buttons": ["🔄 Отправить новый код", "✖️ Отмена"],
        "subject": "Код подтверждения e-mail",
        "body": "Здравствуйте!\n\nВаш код для подтверждения этого адреса в боте биллинга: "
        "{code}\nОн действует 15 мин. Если вы его не запрашивали, просто проигнорируйте это "
        "письмо.\n",
        "wrong": "❌ Неверный код. Осталось попыток: 4.",
        "ok": "✅ E-mail подтверждён: <b>jane@example.com</b>",
        "status": "E-mail: <b>jane@example.com (подтверждён)</b>",
        "cooldown": "Слишком много попыток. Повторите через ",
        "invalid": "❌ Это не похоже на адрес e-mail (пример: name@example.com).\n"
        "Ничего не сохранено. Отправьте другое значение или /cancel.",
    },
}


async def _profile_screen(driver: BotDriver, user_id: int, lang: str) -> tuple[User, Call]:
    user = driver.user(user_id, language_code=lang)
    root = (await driver.send(user, "/settings"))[-1]
    group = "Profile and contacts" if lang == "en" else "Профиль и контакты"
    calls = await driver.click(user, root, group)
    return user, next(c for c in calls if c.method == "editMessageText")


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_new_email_is_confirmed_with_a_code_sent_by_smtp(
    mail_driver: BotDriver,
    smtp: tuple[Inbox, int],
    lang: str,
    caplog: pytest.LogCaptureFixture,
) -> None:
    inbox, _ = smtp
    t = TEXTS[lang]
    driver = mail_driver
    user, screen = await _profile_screen(driver, 901, lang)
    await driver.click(user, screen, t["btn"])
    assert (await driver.send(user, "jane@"))[-1].text == t["invalid"]
    assert inbox.messages == []
    with caplog.at_level(logging.DEBUG):
        calls = await driver.send(user, "jane@example.com")
    prompt = calls[-1]
    assert prompt.text == t["sent"]
    assert prompt.button_texts() == t["buttons"]
    assert len(inbox.messages) == 1
    mail_from, rcpt, message = inbox.messages[0]
    assert (mail_from, rcpt) == ("billing@example.com", ["jane@example.com"])
    assert message["Subject"] == t["subject"]
    code = re.search(r"\b(\d{6})\b", body(message)).group(1)  # type: ignore[union-attr]
    assert body(message) == t["body"].format(code=code)
    ours = [r.getMessage() for r in caplog.records if not r.name.startswith("mail.log")]
    assert ours and all(code not in line for line in ours)  # the code is never logged...
    assert all(code not in (c.text or "") for c in driver.fake.calls)  # ...nor sent to the chat

    # Resend within the cooldown is refused, nothing is sent.
    calls = await driver.click(user, prompt, t["buttons"][0])
    refusal = next(c for c in calls if c.method == "answerCallbackQuery")
    assert refusal["text"].startswith(t["cooldown"])
    assert len(inbox.messages) == 1

    wrong = "000000" if code != "000000" else "111111"
    assert (await driver.send(user, wrong))[-1].text == t["wrong"]
    entered = driver.fake.user_message(user, code)
    calls = await driver.feed(entered)
    assert calls[0].method == "deleteMessage"  # the code does not stay in the chat
    assert calls[0]["message_id"] == entered["message"]["message_id"]
    assert (901, entered["message"]["message_id"]) not in driver.fake.messages
    ok = calls[-1]
    assert ok.text.startswith(t["ok"] + "\n\n")
    assert t["status"] in ok.text
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(901)
        assert account is not None
        profile = await billing.get_profile(account.id)
    assert (profile.email, profile.email_confirmed) == ("jane@example.com", True)


async def test_cancel_leaves_the_email_unconfirmed_and_confirm_button_resends(
    mail_driver: BotDriver, smtp: tuple[Inbox, int]
) -> None:
    inbox, _ = smtp
    driver = mail_driver
    user, screen = await _profile_screen(driver, 902, "en")
    await driver.click(user, screen, "✏️ E-mail")
    await driver.send(user, "a@example.com")
    calls = await driver.send(user, "/cancel")
    assert calls[0].text == "Cancelled. Nothing was changed."
    _, screen = await _profile_screen(driver, 902, "en")
    assert "E-mail: <b>a@example.com (not confirmed)</b>" in screen.text
    assert "📨 Confirm e-mail" in screen.button_texts()
    # The cooldown is over later: move the first code's time back.
    async with driver.gateway.transaction() as billing:
        for row in await billing.session.scalars(select(m.Verification)):
            row.sent_at -= timedelta(minutes=2)
    calls = await driver.click(user, screen, "Confirm e-mail")
    assert next(c for c in calls if c.method == "editMessageText").text.startswith(
        "📨 We sent a 6-digit code to a@example.com."
    )
    assert len(inbox.messages) == 2
    first = re.search(r"\b(\d{6})\b", body(inbox.messages[0][2])).group(1)  # type: ignore[union-attr]
    second = re.search(r"\b(\d{6})\b", body(inbox.messages[1][2])).group(1)  # type: ignore[union-attr]
    if first != second:  # the older code stopped working
        reply = (await driver.send(user, first))[-1]
        assert reply.text == "❌ Wrong code. Attempts left: 4."
    reply = (await driver.send(user, second))[-1]
    assert reply.text.startswith("✅ E-mail confirmed: <b>a@example.com</b>")


async def test_without_smtp_the_address_is_saved_and_the_user_told(driver: BotDriver) -> None:
    user, screen = await _profile_screen(driver, 903, "en")
    await driver.click(user, screen, "✏️ E-mail")
    reply = (await driver.send(user, "b@example.com"))[-1]
    assert reply.text.startswith(
        "✅ E-mail saved: <b>b@example.com</b>\n\n⚠️ Sending e-mail is not set up yet, so the "
        "address cannot be confirmed now.\n\n👤 <b>Profile and contacts</b>"
    )
    # Without SMTP there is nothing to confirm with: no button, and the screen says why.
    assert "Confirm e-mail" not in " ".join(reply.button_texts())
    assert reply.text.endswith(
        "ℹ️ E-mail confirmation is not available: the bot cannot send e-mail."
    )
