"""No personal data and no secrets in the logs (issue 11): a whole customer journey — e-mail
with its confirmation code, phone with the call-password, code word, password, the profile,
a ticket, a card top-up — through the production dispatcher with the production logging at
LOG_LEVEL=DEBUG (and again with LOG_SQL on), on SQLite and on PostgreSQL. Every record that
reaches the root logger is kept twice: as it was emitted (before any redaction) and as the
production handler writes it. Neither may contain a secret the customer typed, one stored in
the database (the hashes, read back after the journey), the one-time codes, the bot token or
the provider token."""

from __future__ import annotations

import io
import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import pytest
from sqlalchemy import select

from bot.config import Settings
from bot.factory import create_bot, create_dispatcher
from bot.flow_control import installed
from bot.logging_setup import QUIET_LOGGERS, SQL_LOGGER, configure_logging
from keyboards.payments import TopupAmountCb, TopupCurrencyCb
from keyboards.settings import SettingsCb
from keyboards.tickets import TicketDeptCb, TicketDraftCb
from services.embedded import models as m
from services.privacy import mask_email, mask_phone, redact
from tests.conftest import _gateway, make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.smtp import Inbox, body
from tests.harness.telegram import TOKEN, Call, Chat, FakeTelegram

USER_ID = 7001
STAFF = -1001
EMAIL = "anna.karenina@example.com"
PHONE = "+447911123456"
PHONE_TYPED = "+44 7911 123456"
CODE_WORD = "Blue Whale 42"
PASSWORD = "Horse9battery7"
PROVIDER_TOKEN = "284685063:TEST:provider-secret-token"
WEBHOOK_SECRET = "webhook-secret-abcdef123456"
# Loggers whose output must reach the capture (nothing in the test setup may mute them).
WATCHED = ("aiosqlite", "asyncpg", SQL_LOGGER, "aiogram", "aiogram.event", "bot", "handlers")


# ---- an SMTP server for the e-mail code ---------------------------------------------------------
# ---- the log capture ----------------------------------------------------------------------------
class RawCapture(logging.Handler):
    """Each record as emitted: message, exception and stack text, before any redaction."""

    def __init__(self) -> None:
        super().__init__(level=logging.DEBUG)
        self.records: list[logging.LogRecord] = []
        self.lines: list[str] = []
        self._format = logging.Formatter()

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)
        parts = [record.name, record.getMessage()]
        if record.exc_info:
            parts.append(self._format.formatException(record.exc_info))
        if record.stack_info:
            parts.append(record.stack_info)
        self.lines.append(" ".join(parts))


@dataclass
class Logs:
    raw: RawCapture
    written: io.StringIO

    def texts(self) -> dict[str, str]:
        return {"as emitted": "\n".join(self.raw.lines), "as written": self.written.getvalue()}


@contextmanager
def production_logging(settings: Settings) -> Iterator[Logs]:
    """`python -m bot`'s logging (bot.logging_setup) writing to a buffer, plus a raw capture
    put in front of it on the root logger; everything is restored afterwards."""
    root = logging.getLogger()
    touched = [*QUIET_LOGGERS, SQL_LOGGER, "mail.log"]
    saved = (root.level, {name: logging.getLogger(name).level for name in touched})
    written = io.StringIO()
    handler = configure_logging(settings, written)
    # The test's own SMTP server (aiosmtpd) logs the envelopes it receives: not the bot's log.
    logging.getLogger("mail.log").setLevel(logging.WARNING)
    raw = RawCapture()
    root.handlers.insert(0, raw)
    try:
        for name in WATCHED:
            logger = logging.getLogger(name)
            assert logger.propagate and not logger.disabled, name
        assert root.getEffectiveLevel() == logging.DEBUG
        assert logging.getLogger("aiogram.event").isEnabledFor(logging.DEBUG)
        yield Logs(raw, written)
    finally:
        root.removeHandler(raw)
        root.removeHandler(handler)
        root.setLevel(saved[0])
        for name, level in saved[1].items():
            logging.getLogger(name).setLevel(level)


# ---- the journey --------------------------------------------------------------------------------
@dataclass
class Journey:
    email_code: str = ""
    caller: str = ""  # the calling number: its last 4 digits are the call-password
    invoice_id: int = 0
    stored: list[str] = field(default_factory=list)  # hashes read back from the database


def last(calls: list[Call]) -> Call:
    shown = [c for c in calls if c.method in ("sendMessage", "editMessageText") and not c.error]
    assert shown, [(c.method, c.params) for c in calls]
    return shown[-1]


async def customer_journey(driver: BotDriver, inbox: Inbox) -> Journey:
    found = Journey()
    driver.fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff", is_forum=True))
    user = driver.user(USER_ID)
    screen = last(await driver.send(user, "/start"))

    async def edit(name: str, value: str) -> list[Call]:
        await driver.press(user, screen, SettingsCb(action="edit", value=name).pack())
        return await driver.send(user, value)

    # E-mail, confirmed by the code it receives.
    calls = await edit("email", EMAIL)
    assert "📨 We sent a 6-digit code to" in last(calls).text
    code = re.search(r"\b(\d{6})\b", body(inbox.messages[-1][2]))
    assert code is not None
    found.email_code = code.group(1)
    assert last(await driver.send(user, found.email_code)).text.startswith("✅ E-mail confirmed")

    # The phone, verified by the call-password.
    await driver.press(user, screen, SettingsCb(action="edit", value="phone").pack())
    calls = await driver.send(user, PHONE_TYPED)
    assert last(calls).text.startswith("👤 <b>Profile and contacts</b>")
    calls = await driver.press(user, last(calls), SettingsCb(action="phone_call").pack())
    _, found.caller = driver.dp["telephony"].calls[-1]
    calls = await driver.send(user, found.caller[-4:])
    assert last(calls).text.startswith("✅ Phone verified")

    # Code word and password (a weak one first: the refusal is logged nowhere either).
    assert last(await edit("code_word", CODE_WORD)).text.startswith("✅ Code word saved.")
    assert "at least one letter and one digit" in last(await edit("password", "longpassword")).text
    await driver.send(user, PASSWORD)
    assert last(await driver.send(user, PASSWORD)).text.startswith("✅ Password changed.")

    for name, value in (
        ("last_name", "Karenina"),
        ("first_name", "Anna"),
        ("city", "Moscow"),
        ("address", "Tverskaya 1"),
    ):
        await edit(name, value)

    # A ticket that mentions the contacts again.
    calls = await driver.send(user, "/newticket")
    await driver.press(user, last(calls), TicketDeptCb(department="billing").pack())
    await driver.send(user, "Refund question")
    draft = last(await driver.send(user, f"Call me at {PHONE_TYPED} or write to {EMAIL}"))
    calls = await driver.press(user, draft, TicketDraftCb(action="send").pack())
    assert any(c.method == "createForumTopic" for c in calls)

    # A card top-up, paid.
    calls = await driver.send(user, "/topup")
    calls = await driver.press(user, last(calls), TopupCurrencyCb(currency="EUR").pack())
    calls = await driver.press(
        user, last(calls), TopupAmountCb(currency="EUR", amount_minor=1000).pack()
    )
    calls = await driver.click(user, last(calls), "by card")
    payload = next(c for c in calls if c.method == "sendInvoice")["payload"]
    await driver.feed(driver.fake.pre_checkout(user, "EUR", 1000, payload))
    calls = await driver.feed(
        driver.fake.successful_payment(user, "EUR", 1000, payload, "tg-charge-7001")
    )
    assert last(calls).text.startswith("✅ <b>Payment received</b>")

    # What the database keeps of the secrets.
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(USER_ID)
        assert account is not None
        row = await billing._account_row(account.id)
        assert row.password_hash and row.code_word_hash
        assert (row.email, row.email_confirmed, row.phone, row.phone_verified) == (
            EMAIL,
            True,
            PHONE,
            True,
        )
        codes = await billing.session.scalars(
            select(m.Verification.code_hash).where(m.Verification.account_id == account.id)
        )
        found.stored = [row.password_hash, row.code_word_hash, *codes]
    assert len(found.stored) == 4  # password, code word, the e-mail code, the call-password
    return found


def needles(journey: Journey) -> dict[str, str]:
    """What must appear in no log line, by name."""
    found = {
        "password": PASSWORD,
        "code word": CODE_WORD,
        "e-mail": EMAIL,
        "e-mail's local part": EMAIL.partition("@")[0],
        "phone": PHONE,
        "phone as typed": PHONE_TYPED,
        "phone without +": PHONE[1:],
        "phone's national number": PHONE[3:],
        "e-mail code": journey.email_code,
        "calling number": journey.caller,
        "calling number without +": journey.caller[1:],
        "bot token": TOKEN,
        "bot token's secret": TOKEN.partition(":")[2],
        "provider token": PROVIDER_TOKEN,
        "webhook secret": WEBHOOK_SECRET,
    }
    for index, stored in enumerate(journey.stored):
        found[f"stored hash {index}"] = stored
        for part, piece in enumerate(p for p in stored.split("$") if len(p) >= 16):
            found[f"stored hash {index}, part {part}"] = piece  # salt and digest on their own
    return found


@pytest.fixture
async def journey_settings(database_url: str, smtp: tuple[Inbox, int]) -> Settings:
    return make_settings(
        database_url,
        log_level="DEBUG",
        smtp_host="127.0.0.1",
        smtp_port=smtp[1],
        smtp_tls="none",
        payment_provider_token=PROVIDER_TOKEN,
        webhook_secret=WEBHOOK_SECRET,
    )


async def run_journey(settings: Settings, fake: FakeTelegram, inbox: Inbox) -> tuple[Logs, Journey]:
    """The journey on a bot built as `python -m bot` builds it, after its logging is set up."""
    with production_logging(settings) as logs:
        gateway = await _gateway(settings.database_url)
        bot = create_bot(settings, session=RecordingSession(fake))
        driver = BotDriver(create_dispatcher(settings, gateway), bot, fake, gateway)
        try:
            journey = await customer_journey(driver, inbox)
        finally:
            driver.close()
            await gateway.close()
    return logs, journey


def assert_clean(logs: Logs, journey: Journey) -> None:
    leaks = [
        f"{what} ({kind}): {next(line for line in text.splitlines() if value in line)[:300]}"
        for kind, text in logs.texts().items()
        for what, value in needles(journey).items()
        if value and value in text
    ]
    assert leaks == []


@pytest.mark.parametrize("log_sql", [False, True], ids=["default", "log_sql"])
async def test_a_customer_journey_at_debug_logs_no_personal_data_and_no_secrets(
    journey_settings: Settings,
    fake_telegram: FakeTelegram,
    smtp: tuple[Inbox, int],
    log_sql: bool,
) -> None:
    settings = journey_settings.model_copy(update={"log_sql": log_sql})
    logs, journey = await run_journey(settings, fake_telegram, smtp[0])
    assert_clean(logs, journey)
    emitted = "\n".join(logs.raw.lines)
    # The capture saw the journey: the dispatcher's and the bot's own lines are there...
    assert "aiogram.event Update id=" in emitted
    assert f"services.email e-mail sent to {mask_email(EMAIL)}" in emitted
    assert f"call-password (development): no call placed to {mask_phone(PHONE)}" in emitted
    # ...the drivers printed nothing below WARNING, and SQL only when asked for, valueless.
    assert not [r for r in logs.raw.records if r.name.startswith(("aiosqlite", "asyncpg"))]
    sql = [r for r in logs.raw.records if r.name.startswith("sqlalchemy")]
    if log_sql:
        assert any("SELECT" in r.getMessage() for r in sql)
        assert any("SQL parameters hidden" in r.getMessage() for r in sql)
        assert {r.levelno for r in sql} == {logging.INFO}  # rows are logged at DEBUG
    else:
        assert sql == []


def test_masks_and_the_redacting_filter() -> None:
    assert mask_email("anna@example.com") == "a***@example.com"
    assert mask_email("not an address") == "***"
    assert mask_phone("+447911123456") == "+44********56"
    assert mask_phone("+7 912 000-11-22") == "+79*******22"
    assert redact(f"to {EMAIL}, {PHONE_TYPED}; update 123456789; token {TOKEN}", [TOKEN]) == (
        f"to {mask_email(EMAIL)}, {mask_phone(PHONE)}; update 123456789; token ***"
    )
    settings = make_settings("sqlite+aiosqlite:///:memory:", payment_provider_token=PROVIDER_TOKEN)
    written = io.StringIO()
    root = logging.getLogger()
    level = root.level
    handler = configure_logging(settings, written)
    try:
        log = logging.getLogger("tests.privacy")
        log.warning("token %s, provider %s, mail %s", TOKEN, PROVIDER_TOKEN, EMAIL)
        try:
            raise RuntimeError(f"https://api.telegram.org/bot{TOKEN}/getMe for {PHONE}")
        except RuntimeError:
            log.exception("request failed")
    finally:
        root.removeHandler(handler)
        root.setLevel(level)
    text = written.getvalue()
    for secret in (TOKEN, TOKEN.partition(":")[2], PROVIDER_TOKEN, EMAIL, PHONE):
        assert secret not in text
    assert f"token ***, provider ***, mail {mask_email(EMAIL)}" in text
    assert f"RuntimeError: https://api.telegram.org/bot***/getMe for {mask_phone(PHONE)}" in text


# ---- the call-password message is deleted, and a failed delete changes nothing ------------------
async def _call_password_prompt(driver: BotDriver, user_id: int) -> tuple[Any, str]:
    user = driver.user(user_id)
    screen = last(await driver.send(user, "/settings"))
    await driver.press(user, screen, SettingsCb(action="edit", value="phone").pack())
    calls = await driver.send(user, PHONE_TYPED)
    await driver.press(user, last(calls), SettingsCb(action="phone_call").pack())
    _, caller = driver.dp["telephony"].calls[-1]
    return user, caller[-4:]


async def test_the_call_password_message_is_deleted(driver: BotDriver) -> None:
    user, digits = await _call_password_prompt(driver, 7002)
    wrong = driver.fake.user_message(user, "12")
    calls = await driver.feed(wrong)
    assert (calls[0].method, calls[0]["message_id"]) == (
        "deleteMessage",
        wrong["message"]["message_id"],
    )
    assert calls[-1].text == "❌ Send exactly 4 digits."
    entered = driver.fake.user_message(user, digits)
    calls = await driver.feed(entered)
    assert (calls[0].method, calls[0]["message_id"]) == (
        "deleteMessage",
        entered["message"]["message_id"],
    )
    assert (7002, entered["message"]["message_id"]) not in driver.fake.messages
    assert calls[-1].text.startswith("✅ Phone verified: <b>+447911123456</b>")


@pytest.mark.parametrize(
    ("status", "description", "retry_after", "times"),
    [
        (400, "Bad Request: message can't be deleted for everyone", None, 1),
        (403, "Forbidden: bot was blocked by the user", None, 1),
        (429, "Too Many Requests: retry after 30", 30, 1),  # longer than the flow control waits
        (500, "Internal Server Error", None, 4),  # the first try and every retry
    ],
    ids=["refused", "forbidden", "flood", "server"],
)
async def test_a_failed_delete_of_the_call_password_changes_nothing(
    driver: BotDriver, status: int, description: str, retry_after: int | None, times: int
) -> None:
    user, digits = await _call_password_prompt(driver, 7003)
    flow = installed(driver.bot)
    assert flow is not None

    async def no_wait(seconds: float) -> None:
        return None

    flow.sleep = no_wait
    for _ in range(times):
        driver.fake.fail_next("deleteMessage", status, description, retry_after=retry_after)
    calls = await driver.send(user, digits)
    assert [c.method for c in calls if c.error] == ["deleteMessage"] * times
    assert calls[-1].text.startswith("✅ Phone verified: <b>+447911123456</b>")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(7003)
        assert account is not None
        assert (await billing.get_profile(account.id)).phone_verified is True


async def test_a_dropped_connection_on_the_delete_changes_nothing(driver: BotDriver) -> None:
    user, digits = await _call_password_prompt(driver, 7004)
    flow = installed(driver.bot)
    assert flow is not None

    async def no_wait(seconds: float) -> None:
        return None

    flow.sleep = no_wait
    for _ in range(4):
        driver.fake.drop_next("deleteMessage")
    calls = await driver.send(user, digits)
    assert calls[-1].text.startswith("✅ Phone verified: <b>+447911123456</b>")
