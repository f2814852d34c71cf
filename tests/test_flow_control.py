"""Telegram's flow control on every Bot API call (bot/flow_control.py): 429 waited exactly
`retry_after` within the bounds, 5xx and dropped connections retried only for calls that are
safe to repeat, the outbox and the central error handler on top of it, and a flood of /start
against a Telegram-like per-chat limit."""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.exceptions import (
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)

from bot.factory import create_bot
from bot.flow_control import FlowControl, installed, safe_to_repeat
from bot.throttle import UserThrottle
from services.embedded.billing import EmbeddedGateway
from services.outbox import OutboxSender
from tests.conftest import make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.telegram import Chat, FakeTelegram, User

MENU = (
    "💼 <b>Personal cabinet</b>\nLogin: <code>tg{id}</code>\nBalance: <b>€0.00</b>\n\n"
    "Choose a section:"
)


@pytest.fixture
def bot(fake_telegram: FakeTelegram) -> Bot:
    fake_telegram.add_chat(Chat(id=801, first_name="Ann"))
    return create_bot(make_settings("sqlite+aiosqlite://"), session=RecordingSession(fake_telegram))


@pytest.fixture
def waits(bot: Bot) -> list[float]:
    """The flow control's waits, recorded instead of slept."""
    recorded: list[float] = []

    async def sleep(seconds: float) -> None:
        recorded.append(seconds)

    flow = installed(bot)
    assert flow is not None
    flow.sleep = sleep
    return recorded


def statuses(fake: FakeTelegram, method: str) -> list[int | str]:
    return [
        "dropped" if c.dropped and c.error else c.error.status if c.error else 200
        for c in fake.calls
        if c.method == method
    ]


def flow_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.name == "bot.flow_control"]


# ---- the middleware on its own -----------------------------------------------------------------
async def test_every_bot_gets_the_flow_control_with_the_configured_bound(
    fake_telegram: FakeTelegram,
) -> None:
    settings = make_settings("sqlite+aiosqlite://", telegram_max_retry_wait_seconds=3)
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    flows = [m for m in bot.session.middleware if isinstance(m, FlowControl)]
    assert [(f.max_wait, f.max_total_wait, f.backoff) for f in flows] == [(3, 6, (0.5, 1.0, 2.0))]
    default = installed(create_bot(make_settings("sqlite+aiosqlite://")))
    assert default is not None and (default.max_wait, default.max_total_wait) == (5, 10)


async def test_a_short_429_is_waited_exactly_then_sent(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 2", retry_after=2)
    with caplog.at_level(logging.WARNING):
        message = await bot.send_message(801, "hello")
    assert waits == [2]
    assert statuses(fake_telegram, "sendMessage") == [429, 200]
    assert [c.text for c in fake_telegram.sent(801)] == ["hello"]
    assert message.text == "hello"
    assert flow_warnings(caplog) == ["429 on sendMessage: retrying in 2 s"]
    assert [r.exc_info for r in caplog.records] == [None]


async def test_a_long_429_is_raised_at_once_without_waiting(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float]
) -> None:
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 60", retry_after=60)
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(801, "hello")
    assert raised.value.retry_after == 60
    assert waits == []
    assert statuses(fake_telegram, "sendMessage") == [429]
    assert fake_telegram.sent() == []


async def test_the_429_waits_of_one_call_stay_within_the_total(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float]
) -> None:
    for seconds in (5, 5, 1):
        fake_telegram.fail_next(
            "sendMessage", 429, f"Too Many Requests: retry after {seconds}", retry_after=seconds
        )
    with pytest.raises(TelegramRetryAfter) as raised:
        await bot.send_message(801, "hello")
    assert raised.value.retry_after == 1  # 5 + 5 + 1 would be over the 10 s in all
    assert waits == [5, 5]
    assert statuses(fake_telegram, "sendMessage") == [429, 429, 429]
    # Each call has its own total: the next one waits again.
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 4", retry_after=4)
    await bot.send_message(801, "again")
    assert waits == [5, 5, 4]
    assert [c.text for c in fake_telegram.sent(801)] == ["again"]


async def test_a_5xx_on_an_edit_is_retried_with_backoff(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float], caplog: pytest.LogCaptureFixture
) -> None:
    sent = await bot.send_message(801, "first")
    fake_telegram.fail_next("editMessageText", 500, "Internal Server Error")
    fake_telegram.fail_next("editMessageText", 502, "Bad Gateway")
    with caplog.at_level(logging.WARNING):
        edited = await bot.edit_message_text("second", chat_id=801, message_id=sent.message_id)
    assert waits == [0.5, 1.0]
    assert statuses(fake_telegram, "editMessageText") == [500, 502, 200]
    assert edited.text == "second"  # type: ignore[union-attr]
    assert fake_telegram.message(801, sent.message_id)["text"] == "second"
    assert flow_warnings(caplog) == [
        "editMessageText failed (Internal Server Error): retry 1 of 3 in 0.5 s",
        "editMessageText failed (Bad Gateway): retry 2 of 3 in 1.0 s",
    ]
    assert [r.exc_info for r in caplog.records] == [None, None]


async def test_a_5xx_retry_gives_up_after_three(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float]
) -> None:
    for _ in range(4):
        fake_telegram.fail_next("getChat", 500, "Internal Server Error")
    with pytest.raises(TelegramServerError):
        await bot.get_chat(801)
    assert waits == [0.5, 1.0, 2.0]
    assert statuses(fake_telegram, "getChat") == [500, 500, 500, 500]


@pytest.mark.parametrize(
    ("method", "call"),
    [
        ("sendMessage", lambda bot: bot.send_message(801, "once")),
        ("sendPhoto", lambda bot: bot.send_photo(801, "AgPhoto1")),
        ("sendDocument", lambda bot: bot.send_document(801, "BQDoc1")),
        ("copyMessage", lambda bot: bot.copy_message(801, 801, 1)),
    ],
)
async def test_a_5xx_on_a_send_is_not_retried(
    bot: Bot,
    fake_telegram: FakeTelegram,
    waits: list[float],
    method: str,
    call: Callable[[Bot], Awaitable[Any]],
) -> None:
    fake_telegram.fail_next(method, 500, "Internal Server Error")
    with pytest.raises(TelegramServerError):
        await call(bot)
    assert waits == []
    assert statuses(fake_telegram, method) == [500]
    assert fake_telegram.sent() == []


async def test_a_dropped_connection_on_answer_callback_query_is_retried(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float]
) -> None:
    await bot.send_message(801, "menu")
    update = fake_telegram.press(User(id=801), fake_telegram.last_sent(801), "x")
    query_id = update["callback_query"]["id"]
    fake_telegram.drop_next("answerCallbackQuery")
    assert await bot.answer_callback_query(query_id, text="Done") is True
    assert waits == [0.5]
    assert statuses(fake_telegram, "answerCallbackQuery") == ["dropped", 200]


async def test_a_dropped_connection_on_a_send_is_not_retried(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float]
) -> None:
    fake_telegram.drop_next("sendMessage", performed=True)  # sent, but the answer was lost
    with pytest.raises(TelegramNetworkError):
        await bot.send_message(801, "only once")
    assert waits == []
    assert [c.text for c in fake_telegram.sent(801)] == ["only once"]  # not a second time


async def test_a_refund_whose_answer_was_lost_is_asked_again(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float]
) -> None:
    fake_telegram.drop_next("refundStarPayment")
    assert await bot.refund_star_payment(801, "charge-1") is True
    assert waits == [0.5]
    assert fake_telegram.refunds == [(801, "charge-1")]


async def test_client_errors_and_413_are_never_retried(
    bot: Bot, fake_telegram: FakeTelegram, waits: list[float]
) -> None:
    with pytest.raises(TelegramBadRequest):
        await bot.edit_message_text("x", chat_id=801, message_id=99)
    fake_telegram.fail_next("editMessageText", 413, "Request Entity Too Large")
    with pytest.raises(TelegramEntityTooLarge):
        await bot.edit_message_text("x", chat_id=801, message_id=99)
    assert waits == []
    assert statuses(fake_telegram, "editMessageText") == [400, 413]


def test_which_methods_are_safe_to_repeat() -> None:
    safe = [
        "getMe",
        "getChat",
        "getChatMember",
        "getStarTransactions",
        "getUpdates",
        "answerCallbackQuery",
        "answerPreCheckoutQuery",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "deleteMessage",
        "deleteMessages",
        "setMyCommands",
        "deleteMyCommands",
        "setWebhook",
        "deleteWebhook",
        "setChatMenuButton",
        "refundStarPayment",
        "editForumTopic",
    ]
    unsafe = [
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendInvoice",
        "copyMessage",
        "forwardMessage",
        "createForumTopic",
        "createInvoiceLink",
    ]
    assert [m for m in safe if not safe_to_repeat(m)] == []
    assert [m for m in unsafe if safe_to_repeat(m)] == []


# ---- the outbox sender on top of it --------------------------------------------------------
class FakeClock:
    """Sleeping moves the clock to when the sleeper wakes, never waits for real. Sleepers of
    the same length wake in the order they fell asleep."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        wake = self.now + seconds
        await asyncio.sleep(0)
        self.now = max(self.now, wake)


async def enqueue(gateway: EmbeddedGateway, chat_id: int, text: str) -> None:
    async with gateway.transaction() as billing:
        await billing.enqueue_message(chat_id, "sendMessage", {"text": text})


async def test_the_outbox_sees_only_429s_longer_than_the_flow_control_waits(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram
) -> None:
    clock = FakeClock()
    flow = installed(bot)
    assert flow is not None
    flow.sleep = clock.sleep
    sender = OutboxSender(sqlite_gateway, bot, clock=clock, sleep=clock.sleep, owner="test")
    await enqueue(sqlite_gateway, 811, "short")
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    report = await sender.drain()
    # Waited in the flow control: the sender sent it in one go.
    assert (report.sent, report.retry_after_waits) == (1, [])
    assert clock.sleeps == [3]
    await enqueue(sqlite_gateway, 812, "long")
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 8", retry_after=8)
    report = await sender.drain()
    # Longer than the flow control waits: the sender's own 429 handling pauses every send.
    assert (report.sent, report.retry_after_waits) == (1, [8])
    assert 8 in clock.sleeps[1:]
    assert [c.text for c in fake_telegram.sent()] == ["short", "long"]
    assert statuses(fake_telegram, "sendMessage") == [429, 200, 429, 200]


# ---- the central error handler -----------------------------------------------------------------
@pytest.mark.parametrize(
    ("fail", "logged"),
    [
        (
            lambda fake: fake.fail_next(
                "sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30
            ),
            "sendMessage failed: Flood control exceeded on method 'SendMessage' in chat 821. "
            "Retry in 30 seconds. Original description: Too Many Requests: retry after 30",
        ),
        (
            lambda fake: fake.fail_next("sendMessage", 502, "Bad Gateway"),
            "sendMessage failed: Bad Gateway",
        ),
        (
            lambda fake: fake.drop_next("sendMessage"),
            "sendMessage failed: ServerDisconnectedError: Server disconnected",
        ),
    ],
    ids=["429", "5xx", "network"],
)
async def test_telegram_unavailable_in_a_handler_is_one_warning_and_no_answer(
    driver: BotDriver,
    caplog: pytest.LogCaptureFixture,
    fail: Callable[[FakeTelegram], None],
    logged: str,
) -> None:
    user = driver.user(821)
    await driver.send(user, "/start")
    fail(driver.fake)
    with caplog.at_level(logging.WARNING):
        update = driver.fake.user_message(user, "/menu")
        calls = await driver.feed(update)
    # The menu was tried once; no apology was attempted (it would meet the same limit).
    assert [(c.method, c.text) for c in calls] == [("sendMessage", MENU.format(id=821))]
    assert calls[0].error is not None or calls[0].dropped
    records = [r for r in caplog.records if r.name == "handlers.errors"]
    assert [(r.levelname, r.getMessage(), r.exc_info) for r in records] == [
        ("WARNING", f"Update {update['update_id']} dropped: {logged}", None)
    ]
    assert [r for r in caplog.records if r.levelno >= logging.ERROR] == []


async def test_other_errors_still_get_the_apology(
    driver: BotDriver, caplog: pytest.LogCaptureFixture
) -> None:
    user = driver.user(822)
    await driver.send(user, "/start")
    driver.fake.fail_next("sendMessage", 400, "Bad Request: something odd")
    driver.allow_unexpected_errors = True
    with caplog.at_level(logging.WARNING):
        calls = await driver.send(user, "/menu")
    assert [(c.method, c.text) for c in calls][-1] == (
        "sendMessage",
        "Something went wrong on our side. Please try again later.",
    )
    [record] = [r for r in caplog.records if r.name == "handlers.errors"]
    assert record.levelname == "ERROR" and record.exc_info is not None


# ---- a flood of /start against Telegram's per-chat limit -----------------------------------
class AttemptLog(BaseRequestMiddleware):
    """Inside the flow control: every attempt of every call, with the time it was made."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.attempts: dict[int, list[tuple[float, BaseException | None]]] = {}
        self.methods: dict[int, Any] = {}

    async def __call__(self, make_request, bot, method):  # type: ignore[no-untyped-def]
        self.methods[id(method)] = method  # keeps it alive: ids stay unique
        entry = self.attempts.setdefault(id(method), [])
        at = self.clock()
        try:
            result = await make_request(bot, method)
        except BaseException as exc:
            entry.append((at, exc))
            raise
        entry.append((at, None))
        return result


class Passed:
    """An outer middleware after the throttle: counts the updates that got past it."""

    def __init__(self) -> None:
        self.count = 0

    async def __call__(self, handler, event, data):  # type: ignore[no-untyped-def]
        self.count += 1
        return await handler(event, data)


@pytest.mark.parametrize(
    ("penalty", "delivered"),
    [(None, 10), (30, 0)],
    ids=["429s-waited", "429s-too-long"],
)
async def test_a_flood_of_start_under_telegrams_chat_limit_never_crashes(
    driver: BotDriver, caplog: pytest.LogCaptureFixture, penalty: int | None, delivered: int
) -> None:
    """30 /start at once from one user into a chat that takes one message a second. Telegram
    says when to retry: the next second (waited and retried), or, for a flooder it punishes,
    in 30 s (longer than the flow control waits: the update is dropped cleanly)."""
    clock = FakeClock()
    driver.fake.clock = clock
    flow = installed(driver.bot)
    assert flow is not None
    flow.sleep = clock.sleep
    [throttle] = [m for m in driver.dp.update.outer_middleware if isinstance(m, UserThrottle)]
    throttle.clock = clock
    user = driver.user(831)
    await driver.send(user, "/start")  # the account exists; the bucket refills meanwhile
    clock.now += 60
    attempts = AttemptLog(clock)
    driver.bot.session.middleware(attempts)
    passed = Passed()
    driver.dp.update.outer_middleware(passed)
    driver.fake.limit_chat_rate(per_second=1, burst=1, retry_after=penalty)
    driver.fake.reset_calls()

    updates = [driver.fake.user_message(user, "/start") for _ in range(30)]
    with caplog.at_level(logging.INFO):
        await asyncio.gather(*(driver.feed(u) for u in updates))

    assert passed.count == 10  # the throttle kept 20 of the 30 from the handlers
    sent = [c.text for c in driver.fake.sent(831)]
    assert sent.count("Too many requests — please wait a moment.") == 1
    assert sent.count(MENU.format(id=831)) == delivered
    retry_after = penalty or 1
    refused = driver.fake.refused(429)
    assert refused and {c.error.retry_after for c in refused} == {retry_after}  # type: ignore[union-attr]
    # Every refused attempt was tried again exactly retry_after later, or its call was given
    # up within the bounds and the update dropped with one warning line.
    given_up = 0
    for tries in attempts.attempts.values():
        for (at, error), (next_at, _) in itertools.pairwise(tries):
            assert isinstance(error, TelegramRetryAfter) and next_at - at == error.retry_after
        last_error = tries[-1][1]
        if last_error is not None:
            assert isinstance(last_error, TelegramRetryAfter)
            waited = sum(e.retry_after for _, e in tries[:-1])  # type: ignore[union-attr]
            assert waited + last_error.retry_after > flow.max_total_wait
            given_up += 1
    assert given_up == 10 - delivered
    assert sum(len(t) for t in attempts.attempts.values()) == len(driver.fake.calls)
    dropped = [
        r for r in caplog.records if r.name == "handlers.errors" and "dropped" in r.getMessage()
    ]
    assert [r.levelname for r in dropped] == ["WARNING"] * given_up
    assert [r for r in caplog.records if r.levelno >= logging.ERROR or r.exc_info] == []
    # A dropped update got no apology: only the menus and the one notice were ever tried.
    assert {c.text for c in driver.fake.calls} == {
        MENU.format(id=831),
        "Too many requests — please wait a moment.",
    }
