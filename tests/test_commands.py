"""setMyCommands at start-up, against the Telegram stand-in: the customers' commands for every
chat, the staff desk's for the staff group and, for each admin there, the admin commands too —
in every supported language."""

from __future__ import annotations

import logging
from typing import Any

import pytest

from bot.commands import register_commands
from bot.factory import create_bot, create_i18n
from tests.conftest import make_settings
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram

STAFF_GROUP = -1001

STAFF = {
    "en": [
        ("queue", "Open tickets, oldest first"),
        ("take", "Take the ticket: your name in its title"),
        ("close", "Close the ticket"),
        ("reopen", "Reopen the ticket"),
        ("note", "Internal note, not sent to the customer"),
        ("canned", "Canned answers: list, or send one by name"),
        ("info", "The customer's account summary"),
        ("verify", "Check the customer's code word"),
        ("refund", "Refund a Stars payment by its charge id"),
    ],
    "ru": [
        ("queue", "Открытые обращения, сначала старые"),
        ("take", "Взять обращение: ваше имя появится в названии темы"),
        ("close", "Закрыть обращение"),
        ("reopen", "Снова открыть обращение"),
        ("note", "Внутренняя заметка, клиент её не увидит"),
        ("canned", "Шаблоны ответов: список или отправка по имени"),
        ("info", "Сводка по аккаунту клиента"),
        ("verify", "Проверить кодовое слово клиента"),
        ("refund", "Вернуть платёж в Stars по его charge id"),
    ],
}
ADMIN = {
    "en": STAFF["en"]
    + [
        ("credit", "Credit a customer's balance"),
        ("debit", "Debit a customer's balance"),
        ("approve_company", "Approve a customer's company details"),
    ],
    "ru": STAFF["ru"]
    + [
        ("credit", "Зачислить средства на баланс клиента"),
        ("debit", "Списать средства с баланса клиента"),
        ("approve_company", "Подтвердить данные компании клиента"),
    ],
}


def listed(call: Any) -> list[tuple[str, str]]:
    return [(c["command"], c["description"]) for c in call["commands"]]


def shape(call: Any) -> tuple[dict[str, str] | None, str | None]:
    """(the scope, its enum values as text; the language) of a setMyCommands call."""
    scope = call.get("scope")
    readable = {k: str(getattr(v, "value", v)) for k, v in scope.items()} if scope else None
    return readable, call.get("language_code")


async def register(fake: FakeTelegram, default: str = "en", **kwargs: Any) -> None:
    bot = create_bot(make_settings("sqlite+aiosqlite://"), session=RecordingSession(fake))
    await register_commands(bot, create_i18n(default), default, **kwargs)


async def test_staff_group_and_admins_get_their_commands_in_every_language(
    fake_telegram: FakeTelegram,
) -> None:
    await register(fake_telegram, "ru", staff_chat_id=STAFF_GROUP, admin_ids=[9001, 9002, 9001])
    calls = fake_telegram.calls_of("setMyCommands")
    group = {"type": "chat", "chat_id": str(STAFF_GROUP)}

    def member(user_id: int) -> dict[str, str]:
        return {"type": "chat_member", "chat_id": str(STAFF_GROUP), "user_id": str(user_id)}

    assert [shape(c) for c in calls] == [
        (None, "en"),
        (None, "ru"),
        (None, None),
        (group, "en"),
        (group, "ru"),
        (group, None),  # the default language's (here ru) for everyone else
        (member(9001), "en"),
        (member(9001), "ru"),
        (member(9001), None),
        (member(9002), "en"),
        (member(9002), "ru"),
        (member(9002), None),
    ]
    assert ("orders", "Мои заказы") in listed(calls[1])
    assert [listed(c) for c in calls[3:6]] == [STAFF["en"], STAFF["ru"], STAFF["ru"]]
    assert [listed(c) for c in calls[6:]] == [ADMIN["en"], ADMIN["ru"], ADMIN["ru"]] * 2
    assert all(len(d) <= 256 for c in calls for _, d in listed(c))


async def test_without_a_staff_group_only_the_customer_commands(
    fake_telegram: FakeTelegram,
) -> None:
    await register(fake_telegram, admin_ids=[9001])
    calls = fake_telegram.calls_of("setMyCommands")
    assert [shape(c) for c in calls] == [(None, "en"), (None, "ru"), (None, None)]


async def test_an_admin_outside_the_staff_group_is_logged_and_the_rest_registered(
    fake_telegram: FakeTelegram, caplog: pytest.LogCaptureFixture
) -> None:
    fake_telegram.fail_next(
        "setMyCommands",
        400,
        "Bad Request: PARTICIPANT_ID_INVALID",
        match=lambda p: (p.get("scope") or {}).get("user_id") == 9001,
    )
    with caplog.at_level(logging.WARNING, logger="bot.commands"):
        await register(fake_telegram, staff_chat_id=STAFF_GROUP, admin_ids=[9001, 9002])
    users = [(c.get("scope") or {}).get("user_id") for c in fake_telegram.calls_of("setMyCommands")]
    assert users == [None] * 6 + [9002] * 3
    assert [r.getMessage() for r in caplog.records] == [
        "Staff commands (chat_member) not registered: Bad Request: PARTICIPANT_ID_INVALID"
    ]
