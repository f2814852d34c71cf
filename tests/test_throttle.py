"""The per-user throttle (bot/throttle.py): a flood from one user is cut at the bucket before
any database work and answered once, other users are not held up, payments always pass, and
the buckets of idle users are forgotten."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from aiogram.types import Update

from bot.factory import create_i18n
from bot.throttle import UserThrottle, Verdict
from services.embedded.billing import EmbeddedGateway
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, Chat, User
from tests.test_payments_handlers import customer

NOTICE = "Too many requests — please wait a moment."
NOTICE_RU = "Слишком много запросов — подождите немного."


def menu_text(user_id: int) -> str:
    return (
        f"💼 <b>Personal cabinet</b>\nLogin: <code>tg{user_id}</code>\nBalance: <b>€0.00</b>\n\n"
        "Choose a section:"
    )


class Clock:
    def __init__(self) -> None:
        self.now = 5000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def clock(driver: BotDriver) -> Clock:
    """The driver's throttle on a clock that moves only when the test moves it."""
    fake_clock = Clock()
    throttle(driver).clock = fake_clock
    return fake_clock


def throttle(driver: BotDriver) -> UserThrottle:
    [found] = [m for m in driver.dp.update.outer_middleware if isinstance(m, UserThrottle)]
    return found


def menus(calls: list[Call], user_id: int) -> list[Call]:
    return [c for c in calls if c.method == "sendMessage" and c.text == menu_text(user_id)]


def notices(calls: list[Call], text: str = NOTICE) -> list[Call]:
    return [c for c in calls if c.text == text]


async def account_of(gateway: EmbeddedGateway, telegram_id: int) -> Any:
    async with gateway.transaction() as billing:
        return await billing.find_account_by_telegram(telegram_id)


class Passed:
    """An outer middleware after all the others: counts the updates that got past the throttle
    (and through the billing and account middlewares) to the handlers."""

    def __init__(self) -> None:
        self.users: list[int] = []

    async def __call__(self, handler, event, data):  # type: ignore[no-untyped-def]
        self.users.append(data["event_from_user"].id)
        return await handler(event, data)


def test_factory_registers_the_throttle_before_any_database_work(driver: BotDriver) -> None:
    found = throttle(driver)
    assert (found.rate, found.burst) == (3.0, 10.0)
    chain = list(driver.dp.update.outer_middleware)
    position = chain.index(found)
    # Right after the in-flight tracking (shutdown waits for its notices), before the billing
    # transaction and the account lookup.
    assert type(chain[position - 1]).__name__ == "InFlightUpdates"
    ours_after = [type(m).__name__ for m in chain[position + 1 :]]
    assert "AccountMiddleware" in ours_after
    assert any(name.startswith("Billing") for name in ours_after)


async def test_500_updates_at_once_reach_the_handlers_only_up_to_the_burst(
    driver: BotDriver, clock: Clock
) -> None:
    flooder, other = driver.user(901), driver.user(902)
    await driver.send(flooder, "/start")
    await driver.send(other, "/start")
    clock.now += 60
    passed = Passed()
    driver.dp.update.outer_middleware(passed)
    start = len(driver.fake.calls)
    flood = [driver.fake.user_message(flooder, "/menu") for _ in range(500)]
    timing: dict[str, float] = {}

    async def the_other_user() -> list[Call]:
        began = time.perf_counter()
        calls = await driver.feed(driver.fake.user_message(other, "/menu"))
        timing["other"] = time.perf_counter() - began
        return calls

    results = await asyncio.gather(
        *(driver.feed(u) for u in flood[:250]),
        the_other_user(),
        *(driver.feed(u) for u in flood[250:]),
    )
    calls = driver.fake.calls[start:]
    to_flooder = [c for c in calls if c.method == "sendMessage" and c["chat_id"] == 901]
    assert len(menus(to_flooder, 901)) == 10  # the burst, and not one more
    [notice] = notices(to_flooder)
    assert len(to_flooder) == 11
    assert notice["reply_parameters"]["message_id"] == flood[10]["message"]["message_id"]
    assert [c["chat_id"] for c in menus(calls, 902)] == [902]
    assert menus(results[250], 902) != []
    assert timing["other"] < 0.5
    assert sorted(passed.users) == [901] * 10 + [902]


async def test_the_episode_ends_only_when_the_bucket_is_full_again(
    driver: BotDriver, clock: Clock
) -> None:
    user = driver.user(911)
    await driver.send(user, "/start")
    clock.now += 60
    calls: list[Call] = []
    for _ in range(12):
        calls += await driver.send(user, "/menu")
    assert (len(menus(calls, 911)), len(notices(calls))) == (10, 1)
    clock.now += 1.3  # 3.9 tokens back: three pass, the excess stays silent (same episode)
    calls = []
    for _ in range(5):
        calls += await driver.send(user, "/menu")
    assert (len(menus(calls, 911)), len(notices(calls))) == (3, 0)
    clock.now += 9.1 / 3 + 0.001  # full again: the episode is over, a new flood is answered
    calls = []
    for _ in range(13):
        calls += await driver.send(user, "/menu")
    assert (len(menus(calls, 911)), len(notices(calls))) == (10, 1)


async def test_pressed_buttons_get_the_notice_as_a_toast_in_the_users_language(
    driver: BotDriver, clock: Clock
) -> None:
    user = driver.user(921, language_code="ru")
    menu = (await driver.send(user, "/menu"))[-1]
    clock.now += 60
    answers: list[Call] = []
    for _ in range(12):
        calls = await driver.click(user, menu, "Справка")
        answers += [c for c in calls if c.method == "answerCallbackQuery"]
    assert len(answers) == 11  # ten handled, one told; the twelfth is dropped silently
    assert [a.get("text") for a in answers].count(NOTICE_RU) == 1
    assert answers[-1].get("text") == NOTICE_RU
    assert answers[-1].get("show_alert") is None  # a toast, not an alert


@pytest.mark.parametrize(("language_code", "expected"), [("de", NOTICE), (None, NOTICE)])
async def test_other_languages_get_the_default(
    driver: BotDriver, clock: Clock, language_code: str | None, expected: str
) -> None:
    user = driver.user(931, language_code=language_code)
    for _ in range(10):
        await driver.send(user, "/menu")
    update = driver.fake.user_message(user, "/menu")
    [notice] = await driver.feed(update)
    assert (notice.method, notice["chat_id"], notice.text) == ("sendMessage", 931, expected)
    assert notice["reply_parameters"]["message_id"] == update["message"]["message_id"]


async def test_payments_are_never_throttled(driver: BotDriver, clock: Clock) -> None:
    user, account_id = await customer(driver, 941)  # /start and a complete profile
    async with driver.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
    clock.now += 60
    for _ in range(15):
        await driver.send(user, "/menu")
    assert throttle(driver).check(941) is Verdict.DROP  # the bucket is empty
    answer = [
        c
        for c in await driver.feed(driver.fake.pre_checkout(user, "XTR", 500, invoice.payload))
        if c.method == "answerPreCheckoutQuery"
    ]
    assert [c["ok"] for c in answer] == [True]
    calls = await driver.feed(
        driver.fake.successful_payment(user, "XTR", 500, invoice.payload, "thr-941", "")
    )
    assert [c.method for c in calls] == ["sendMessage"]
    assert notices(calls) == []
    assert (await account_of(driver.gateway, 941)).balance_minor == 1000
    assert throttle(driver).check(941) is Verdict.DROP  # payments did not use up tokens either


async def test_updates_without_a_user_pass() -> None:
    gate = UserThrottle(create_i18n("en"), rate=1, burst=1, clock=lambda: 0.0)
    update = Update.model_validate(
        {
            "update_id": 1,
            "channel_post": {
                "message_id": 1,
                "date": 0,
                "chat": {"id": -100500, "type": "channel", "title": "News"},
                "text": "hi",
            },
        }
    )
    handled = 0

    async def handler(event: Any, data: dict[str, Any]) -> None:
        nonlocal handled
        handled += 1

    for _ in range(20):
        await gate(handler, update, {"event_from_user": None})
    assert handled == 20
    assert len(gate) == 0


def test_idle_buckets_are_forgotten_and_the_number_of_users_is_capped() -> None:
    now = [0.0]
    gate = UserThrottle(create_i18n("en"), rate=3, burst=10, clock=lambda: now[0], max_users=500)
    for user_id in range(1000):
        assert gate.check(user_id) is Verdict.PASS
    assert len(gate) == 500  # the least recently seen beyond the cap are forgotten
    now[0] += 3  # not yet full (9 of 10 tokens): kept
    assert gate.check(5000) is Verdict.PASS
    assert len(gate) == 500  # still capped
    now[0] += 0.34  # 10 / 3 s after their last update: full, the same as no bucket at all
    assert gate.check(5001) is Verdict.PASS
    assert len(gate) == 2
    for _ in range(10):
        gate.check(7)
    assert gate.check(7) is Verdict.FIRST_DROP
    assert gate.check(7) is Verdict.DROP
    now[0] += 10 / 3 + 0.01
    assert gate.check(8) is Verdict.PASS
    assert len(gate) == 1  # 7 was full again and forgotten with its episode
    assert gate.check(7) is Verdict.PASS


async def test_an_album_counts_as_one_update(driver: BotDriver, clock: Clock) -> None:
    """Ten photos of one album arrive as ten updates at once; with a few messages before them
    they would otherwise overflow the burst."""
    user = driver.user(951)
    await driver.send(user, "/start")
    clock.now += 60
    passed = Passed()
    driver.dp.update.outer_middleware(passed)
    for _ in range(8):
        await driver.send(user, "hello")
    for index in range(10):
        await driver.send(
            user, photo=f"AgACAgIAAxkBAAIBQ2Zalbum{index:04d}", extra={"media_group_id": "album-1"}
        )
    assert passed.users == [951] * 18
    assert notices(driver.fake.calls) == []
    # The next message is the tenth token: it passes; the one after it is dropped.
    await driver.send(user, "one more")
    await driver.send(user, "and another")
    assert passed.users == [951] * 19
    assert len(notices(driver.fake.calls)) == 1


async def test_the_staff_group_is_not_throttled(driver: BotDriver, clock: Clock) -> None:
    """An agent pasting many replies in the staff group loses none of them."""
    staff_chat = driver.fake.add_chat(Chat(id=-1001, type="supergroup", title="Staff"))
    agent = User(id=9001, first_name="Agent")
    passed = Passed()
    driver.dp.update.outer_middleware(passed)
    for index in range(30):
        await driver.send(agent, f"reply {index}", chat=staff_chat)
    assert passed.users == [9001] * 30
    assert notices(driver.fake.calls) == []
