"""Bounded input (issue 11): every id, page and amount that arrives in callback data, a command
or a typed text is range-checked before it reaches the database. Bad input gets a localized
"out of date" / validation answer, changes nothing and never produces a traceback; customer
buttons pressed in a group get a short answer and nothing else."""

from __future__ import annotations

import importlib
import pkgutil
import re
from collections.abc import Iterator
from enum import Enum
from typing import Any

import pytest
from aiogram.filters.callback_data import CallbackData, CallbackQueryFilter
from pydantic_core import PydanticUndefined
from sqlalchemy import select

import keyboards
from keyboards.callbacks import MAX_PAGE
from services.embedded import models as m
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, Chat, User
from tests.test_orders_handlers import VPS_1, account_with, order_for
from tests.test_payments_handlers import customer, only, open_amount_prompt
from tests.test_settings_handlers import account_row, open_group

STAFF = -1001
OTHER_GROUP = -2002
ADMIN = User(id=9001, first_name="Boss")
HUGE = "9" * 30
NEGATIVE_HUGE = "-" + "1" * 30
STALE = {
    "en": "This button is out of date. Please open the menu again: /menu",
    "ru": "Эта кнопка устарела. Откройте меню заново: /menu",
}
PRIVATE_ONLY = {
    "en": "These buttons work only in a private chat with the bot.",
    "ru": "Эти кнопки работают только в личном чате с ботом.",
}
# A valid-looking value for string fields the class docstring says nothing about.
STRING_SAMPLES = {
    "section": "main",
    "code": "en",
    "currency": "EUR",
    "department": "tech",
    "topic": "country",
    "key": "created",
}


# ---- helpers ----------------------------------------------------------------------------------
def callback_classes() -> list[type[CallbackData]]:
    """Every CallbackData factory defined in keyboards/ (modules imported, subclasses walked)."""
    for info in pkgutil.iter_modules(keyboards.__path__):
        importlib.import_module(f"keyboards.{info.name}")

    def walk(cls: type[CallbackData]) -> Iterator[type[CallbackData]]:
        for sub in cls.__subclasses__():
            yield sub
            yield from walk(sub)

    found = {c for c in walk(CallbackData) if c.__module__.startswith("keyboards.")}
    return sorted(found, key=lambda c: c.__name__)


def int_fields(cls: type[CallbackData]) -> list[str]:
    return [name for name, f in cls.model_fields.items() if f.annotation is int]


def enum_type(cls: type[CallbackData], name: str) -> type[Enum] | None:
    """The Enum of a field that names an action (keyboards: `action: OrderAction`), else None."""
    annotation = cls.model_fields[name].annotation
    return annotation if isinstance(annotation, type) and issubclass(annotation, Enum) else None


def string_candidates(cls: type[CallbackData], name: str) -> list[str]:
    """Values a required string field may take: the words its docstring names (the actions
    of the factory), else a sample for the field."""
    if name in STRING_SAMPLES:
        return [STRING_SAMPLES[name]]
    words = re.findall(r"\b[a-z][a-z_]+\b", cls.__doc__ or "")
    return list(dict.fromkeys(words)) or ["x"]


def raw_values(cls: type[CallbackData], bad_field: str | None, bad: str) -> Iterator[list[str]]:
    """Packed field values (strings, as in callback data) with `bad_field` set to `bad` and
    the other fields plausible; one list per combination of required string values."""
    combos: list[list[str]] = [[]]
    for name, field in cls.model_fields.items():
        if name == bad_field:
            options = [bad]
        elif field.annotation is int:
            options = ["1" if field.default is PydanticUndefined else str(field.default)]
        elif field.annotation is bool:
            options = ["1"]
        elif (enum := enum_type(cls, name)) is not None:
            options = [str(member.value) for member in enum]  # every known action
        elif field.default is not PydanticUndefined:
            options = [str(field.default)]
        else:
            options = string_candidates(cls, name)
        combos = [[*combo, option] for combo in combos for option in options]
    yield from combos


def pack_raw(cls: type[CallbackData], values: list[str]) -> str:
    """Callback data as Telegram would deliver it, packed by hand: the factory may refuse to
    pack an out-of-range value."""
    return cls.__separator__.join([cls.__prefix__, *values])


async def snapshot(driver: BotDriver) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every table: a press that changes nothing leaves this as it was."""
    rows: dict[str, list[tuple[Any, ...]]] = {}
    async with driver.gateway.transaction(read_only=True) as billing:
        for table in m.Base.metadata.sorted_tables:
            result = await billing.session.execute(select(table))
            rows[table.name] = sorted((tuple(r) for r in result.all()), key=repr)
    return rows


def answers(calls: list[Call]) -> list[str | None]:
    return [c.get("text") for c in calls if c.method == "answerCallbackQuery"]


def group_message(driver: BotDriver, user: User, chat: Chat) -> dict[str, Any]:
    """A message in a group under which a (forged or forwarded) customer button is pressed."""
    return driver.fake.user_message(user, "hello", chat=chat)["message"]


# ---- callback data: every int field of every factory ------------------------------------------
def test_every_factory_refuses_out_of_range_ints_at_unpack() -> None:
    """The bound lives in the factories: unpack (what the callback filters call) refuses it, so
    no handler ever sees such a value."""
    classes = callback_classes()
    assert len(classes) >= 15, [c.__name__ for c in classes]
    refused_by_none = []
    for cls in classes:
        for name in int_fields(cls):
            for bad in (HUGE, NEGATIVE_HUGE, "٣", "²"):
                for values in raw_values(cls, name, bad):
                    try:
                        cls.unpack(pack_raw(cls, values))
                    except (TypeError, ValueError):
                        continue
                    refused_by_none.append(pack_raw(cls, values))
    assert refused_by_none == []


async def customer_with_an_order(driver: BotDriver, user: User) -> Call:
    """A customer with order #1 and a ticket; returns their main menu message."""
    account_id = await account_with(driver, user)
    await order_for(driver, account_id, VPS_1)
    await driver.send(user, "/newticket")
    await driver.send(user, "/cancel")
    return (await driver.send(user, "/menu"))[-1]


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_out_of_range_ints_in_callback_data_are_answered_and_change_nothing(
    driver: BotDriver, lang: str
) -> None:
    user = driver.user(1101, language_code=lang)
    menu = await customer_with_an_order(driver, user)
    before = await snapshot(driver)
    failures: list[str] = []
    pressed = 0
    for cls in callback_classes():
        for name in int_fields(cls):
            for bad in (HUGE, NEGATIVE_HUGE):
                combos = list(raw_values(cls, name, bad))
                for values in combos if lang == "en" else combos[:1]:  # ru: the language
                    data = pack_raw(cls, values)
                    pressed += 1
                    try:
                        calls = await driver.press(user, menu, data)
                    except AssertionError as exc:  # the driver reports a handler crash
                        failures.append(f"{data}: {exc}")
                        continue
                    if answers(calls) != [STALE[lang]] or len(calls) != 1:
                        failures.append(f"{data}: {[(c.method, c.get('text')) for c in calls]}")
    assert pressed > (100 if lang == "en" else 20)
    assert failures == []
    assert await snapshot(driver) == before


def upper_bound(cls: type[CallbackData], name: str) -> int:
    [limit] = [item.le for item in cls.model_fields[name].metadata if hasattr(item, "le")]
    return int(limit)


async def test_the_largest_accepted_ints_reach_handlers_safely_on_both_databases(
    db_driver: BotDriver,
) -> None:
    """At the upper bound of every int field the press is handled (ids name nothing, pages are
    clamped, amounts exceed the limits): answered, no crash on SQLite or PostgreSQL (whose
    INTEGER ids are the narrowest), nothing changed."""
    driver = db_driver
    user = driver.user(1104)
    menu = await customer_with_an_order(driver, user)
    before = await snapshot(driver)
    failures: list[str] = []
    for cls in callback_classes():
        for name in int_fields(cls):
            for values in raw_values(cls, name, str(upper_bound(cls, name))):
                data = pack_raw(cls, values)
                cls.unpack(data)  # in range: the factory accepts it
                try:
                    calls = await driver.press(user, menu, data)
                except AssertionError as exc:
                    failures.append(f"{data}: {exc}")
                    continue
                if len(answers(calls)) != 1:
                    failures.append(f"{data}: {[(c.method, c.get('text')) for c in calls]}")
    assert failures == []
    assert await snapshot(driver) == before


@pytest.mark.parametrize(
    "data",
    [
        "invs:" + HUGE,
        "hist:" + HUGE,
        "ol:page:" + HUGE,
        "tk:list:0:" + HUGE,
        "inv:view:1:" + HUGE,
        f"invs:{MAX_PAGE + 1}",
        "invs:-1",
    ],
)
async def test_huge_page_numbers_are_out_of_date(driver: BotDriver, data: str) -> None:
    user, _ = await customer(driver, 1102)
    menu = (await driver.send(user, "/menu"))[-1]
    calls = await driver.press(user, menu, data)
    assert [(c.method, c.get("text")) for c in calls] == [("answerCallbackQuery", STALE["en"])]


async def test_the_largest_page_still_shows_the_last_page(driver: BotDriver) -> None:
    user, _ = await customer(driver, 1103)
    menu = (await driver.send(user, "/menu"))[-1]
    calls = await driver.press(user, menu, f"hist:{MAX_PAGE}")
    assert [c.method for c in calls] == ["editMessageText", "answerCallbackQuery"]
    assert calls[0].text.startswith("📜 <b>Payment history</b>")
    calls = await driver.press(user, menu, f"ol:page:{MAX_PAGE}")
    assert calls[0].text == "📦 You have no orders yet. Order a server in the «New order» section."


# ---- callback data: actions are Enums -----------------------------------------------------------
def enum_classes() -> list[tuple[type[CallbackData], str]]:
    """(factory, field) for every field whose type is an Enum."""
    return [
        (cls, name)
        for cls in callback_classes()
        for name in cls.model_fields
        if enum_type(cls, name)
    ]


def test_action_fields_are_enums_with_short_values() -> None:
    fields = {(cls.__name__, name) for cls, name in enum_classes()}
    assert {
        ("OrdersCb", "action"),
        ("OrderCb", "action"),
        ("InvoiceCb", "action"),
        ("TicketCb", "action"),
        ("SettingsCb", "action"),
        ("RenewCb", "action"),
        ("ChangeCb", "action"),
        ("NewOrderCb", "action"),
        ("CartCb", "action"),
        ("TicketDraftCb", "action"),
        ("BroadcastCb", "action"),
    } <= fields
    for cls, name in enum_classes():
        enum = enum_type(cls, name)
        assert enum is not None and issubclass(enum, str), cls.__name__
        for member in enum:
            assert member.value.isascii() and 0 < len(member.value) <= 10, (cls, member)
            values = [
                member.value if n == name else v
                for n, v in zip(cls.model_fields, next(raw_values(cls, None, "")), strict=True)
            ]
            assert cls.unpack(pack_raw(cls, values)).model_dump()[name] is member


@pytest.mark.parametrize("lang", ["en", "ru"])
async def test_unknown_action_values_fall_through_to_the_stale_answer(
    driver: BotDriver, lang: str
) -> None:
    """An action value no Enum member has (an old or forged button) is refused at unpack: no
    section handler matches and the fallback router gives the one "out of date" answer."""
    user = driver.user(1105, language_code=lang)
    menu = await customer_with_an_order(driver, user)
    before = await snapshot(driver)
    failures: list[str] = []
    pressed = 0
    for cls, name in enum_classes():
        for bad in ("launch", "VIEW", "", "view "):
            for values in raw_values(cls, name, bad):
                data = pack_raw(cls, values)
                with pytest.raises(ValueError):
                    cls.unpack(data)
                pressed += 1
                calls = await driver.press(user, menu, data)
                got = [(c.method, c.get("text"), c.get("show_alert")) for c in calls]
                if got != [("answerCallbackQuery", STALE[lang], True)]:
                    failures.append(f"{data}: {got}")
    assert pressed >= 20
    assert failures == []
    assert await snapshot(driver) == before


# ---- typed amounts and numbers ----------------------------------------------------------------
TOPUP_CASES = [
    ("1" * 27, "The maximum top-up is €200.00.", "Максимальная сумма пополнения — 200,00\xa0€."),
    (
        "1" * 27 + ".50",
        "The maximum top-up is €200.00.",
        "Максимальная сумма пополнения — 200,00\xa0€.",
    ),
    (
        "٣",
        "Please send the amount as a number, for example 25 or 25.50.",
        "Отправьте сумму числом, например 25 или 25,50.",
    ),
    (
        "²",
        "Please send the amount as a number, for example 25 or 25.50.",
        "Отправьте сумму числом, например 25 или 25,50.",
    ),
    (
        "1٣",
        "Please send the amount as a number, for example 25 or 25.50.",
        "Отправьте сумму числом, например 25 или 25,50.",
    ),
    (
        "1" + "0" * 27 + "1",
        "The maximum top-up is €200.00.",
        "Максимальная сумма пополнения — 200,00\xa0€.",
    ),
    (
        "5." + "0" * 40,
        "Too many decimals: at most 2 digits after the point in EUR.",
        "Слишком много знаков после запятой: в EUR не больше 2 знаков.",
    ),
]


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize(("text", "english", "russian"), TOPUP_CASES)
async def test_topup_amount_bounds(
    driver: BotDriver, lang: str, text: str, english: str, russian: str
) -> None:
    user, _ = await customer(driver, 1110, language=lang)
    await open_amount_prompt(driver, user, "EUR")
    before = await snapshot(driver)
    answer = only(await driver.send(user, text), "sendMessage")
    assert answer.text == (english if lang == "en" else russian)
    assert await snapshot(driver) == before
    # still in the dialog: a leading-zero amount is still a small amount
    created = (await driver.send(user, "0000000000000000000000000000010"))[-1]
    assert created.text.startswith("🧾 <b>")


THRESHOLD_AGAIN = {
    "en": "\nNothing was saved. Send another value or /cancel.",
    "ru": "\nНичего не сохранено. Отправьте другое значение или /cancel.",
}
THRESHOLD_CASES = {
    "1" * 27: {"en": "❌ The amount is too large.", "ru": "❌ Слишком большая сумма."},
    "٣": {
        "en": "❌ Send an amount, for example 10 or 10.50, or «off».",
        "ru": "❌ Отправьте сумму, например 10 или 10,50, или «выкл».",
    },
    "²": {
        "en": "❌ Send an amount, for example 10 or 10.50, or «off».",
        "ru": "❌ Отправьте сумму, например 10 или 10,50, или «выкл».",
    },
}


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("text", list(THRESHOLD_CASES))
async def test_threshold_bounds(driver: BotDriver, lang: str, text: str) -> None:
    user = driver.user(1111, language_code=lang)
    screen = await open_group(driver, user, lang, "general")
    await driver.click(user, screen, "✏️ " + ("Low" if lang == "en" else "Опов"))
    before = await snapshot(driver)
    calls = await driver.send(user, text)
    assert calls[-1].text == THRESHOLD_CASES[text][lang] + THRESHOLD_AGAIN[lang]
    assert await snapshot(driver) == before
    assert (await account_row(driver, 1111)).low_balance_threshold_minor is None


PHONE_INVALID = {
    "en": "❌ This does not look like a mobile number. Use the international format, "
    "e.g. +44 7911 123456.\nNothing was saved. Send another value or /cancel.",
    "ru": "❌ Это не похоже на номер мобильного. Используйте международный формат, "
    "например +7 912 345-67-89.\nНичего не сохранено. Отправьте другое значение или /cancel.",
}


@pytest.mark.parametrize("lang", ["en", "ru"])
@pytest.mark.parametrize("text", ["+٤٤٧٩١١١٢٣٤٥٦", "+44791112345²", "+447911123456٣"])
async def test_phone_accepts_ascii_digits_only(driver: BotDriver, lang: str, text: str) -> None:
    user = driver.user(1112, language_code=lang)
    screen = await open_group(driver, user, lang, "profile")
    await driver.click(user, screen, "✏️ " + ("Mobile" if lang == "en" else "Мобильный"))
    before = await snapshot(driver)
    calls = await driver.send(user, text)
    assert calls[-1].text == PHONE_INVALID[lang]
    assert await snapshot(driver) == before
    assert (await account_row(driver, 1112)).phone is None


@pytest.mark.parametrize("query", ["²", "#²", "٣", "#" + HUGE])
async def test_order_search_by_odd_digits_finds_nothing_and_does_not_crash(
    driver: BotDriver, query: str
) -> None:
    user = driver.user(1113)
    account_id = await account_with(driver, user)
    await order_for(driver, account_id, VPS_1)
    calls = await driver.send(user, f"/orders {query}")
    assert calls[-1].text == f"🔍 No orders match «{query}»."


# ---- staff commands ---------------------------------------------------------------------------
def staff_group(driver: BotDriver) -> Chat:
    return driver.fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff"))


def group_replies(calls: list[Call]) -> list[str | None]:
    return [c.text for c in calls if c.method == "sendMessage" and c.get("chat_id") == STAFF]


@pytest.mark.parametrize(
    ("command", "reply"),
    [
        (f"/credit 1 {'1' * 30} Goodwill", f"Invalid amount: {'1' * 30}."),
        (f"/debit 1 {'1' * 30} Fee", f"Invalid amount: {'1' * 30}."),
        ("/credit 1 ٣ Goodwill", "Invalid amount: ٣."),
        ("/credit 1 ² Goodwill", "Invalid amount: ²."),
        ("/credit 1 1" + "0" * 12 + " Goodwill", "Invalid amount: 1" + "0" * 12 + "."),
        ("/credit ² 10 Goodwill", "Account ² not found."),
        ("/credit ٣ 10 Goodwill", "Account ٣ not found."),
        (f"/credit {HUGE} 10 Goodwill", f"Account {HUGE} not found."),
        (f"/credit #{HUGE} 10 Goodwill", f"Account #{HUGE} not found."),
        (f"/credit -{HUGE} 10 Goodwill", f"Account -{HUGE} not found."),
        ("/approve_company ²", "Account ² not found."),
        (f"/approve_company {HUGE}", f"Account {HUGE} not found."),
    ],
)
async def test_staff_numeric_arguments_are_bounded(
    driver: BotDriver, command: str, reply: str
) -> None:
    group = staff_group(driver)
    await customer(driver, 501)  # account #1
    before = await snapshot(driver)
    calls = await driver.send(ADMIN, command, chat=group)
    assert group_replies(calls) == [reply]
    assert await snapshot(driver) == before


async def test_staff_credit_of_a_sane_amount_still_works(driver: BotDriver) -> None:
    group = staff_group(driver)
    await customer(driver, 501)
    calls = await driver.send(ADMIN, "/credit 1 999999999999.99 Test", chat=group)
    assert group_replies(calls) == [
        "✅ Credited €999,999,999,999.99 to account #1 (tg501). Balance: €999,999,999,999.99."
    ]


# ---- customer buttons in groups ---------------------------------------------------------------
def staff_callback_classes(driver: BotDriver) -> set[type[CallbackData]]:
    """Factories the staff router handles itself (their buttons belong in the staff group)."""
    classes: set[type[CallbackData]] = set()
    for router in driver.dp.chain_tail:
        if router.name != "staff":
            continue
        for handler in router.callback_query.handlers:
            for flt in handler.filters or ():
                if isinstance(flt.callback, CallbackQueryFilter):
                    classes.add(flt.callback.callback_data)
    return classes


@pytest.mark.parametrize(("chat_id", "lang"), [(STAFF, "en"), (OTHER_GROUP, "en"), (STAFF, "ru")])
async def test_customer_buttons_in_a_group_get_a_short_answer_only(
    driver: BotDriver, chat_id: int, lang: str
) -> None:
    chat = driver.fake.add_chat(Chat(id=chat_id, type="supergroup", title="Group"))
    user = driver.user(1120, language_code=lang)
    account_id = await account_with(driver, user)
    await order_for(driver, account_id, VPS_1)
    private_menu = (await driver.send(user, "/menu"))[-1]
    data = [b["callback_data"] for row in private_menu.buttons() for b in row]
    staff_classes = staff_callback_classes(driver)
    for cls in callback_classes():
        if cls in staff_classes:
            continue
        data += [pack_raw(cls, values) for values in raw_values(cls, None, "")][:3]
    message = group_message(driver, user, chat)
    before = await snapshot(driver)
    failures = []
    for item in data:
        try:
            calls = await driver.press(user, message, item)
        except AssertionError as exc:
            failures.append(f"{item}: {exc}")
            continue
        if [(c.method, c.get("text"), c.get("show_alert")) for c in calls] != [
            ("answerCallbackQuery", PRIVATE_ONLY[lang], None)
        ]:
            failures.append(f"{item}: {[(c.method, c.get('text')) for c in calls]}")
    assert len(data) > 20
    assert failures == []
    assert await snapshot(driver) == before


async def test_customer_commands_in_a_group_are_not_answered(driver: BotDriver) -> None:
    chat = driver.fake.add_chat(Chat(id=OTHER_GROUP, type="supergroup", title="Group"))
    user = driver.user(1121)
    await account_with(driver, user)
    before = await snapshot(driver)
    for text in ("/menu", "/orders", "/topup", "/balance", "/settings", "/invoices", "/tickets"):
        assert await driver.send(user, text, chat=chat) == [], text
    assert await snapshot(driver) == before


# ---- the parsing helpers ----------------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "detail"),
    [
        ("٣", "not_a_number"),
        ("²", "not_a_number"),
        ("1٣.50", "not_a_number"),
        ("1" * 13, "too_large"),
        ("1" * 27 + ".50", "too_large"),
        ("5." + "0" * 40, "too_many_decimals"),
    ],
)
def test_parse_amount_takes_ascii_digits_and_a_bounded_number_of_them(
    text: str, detail: str
) -> None:
    from services.errors import ValidationFailed
    from services.money import parse_amount

    with pytest.raises(ValidationFailed) as caught:
        parse_amount(text, "EUR")
    assert caught.value.detail == detail


def test_parse_amount_still_reads_ordinary_amounts() -> None:
    from services.money import parse_amount

    assert parse_amount("999999999999.99", "EUR") == 99999999999999
    assert parse_amount("0" * 30 + "12,50", "EUR") == 1250
    assert parse_amount("1 000", "RUB") == 100000


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12", 12),
        ("#12", 12),
        (" 7 ", 7),
        (str(2**31 - 1), 2**31 - 1),
        (str(2**31), None),
        (HUGE, None),
        ("0", None),
        ("-3", None),
        ("²", None),
        ("٣", None),
        ("1_0", None),
        ("", None),
    ],
)
def test_parse_id(text: str, expected: int | None) -> None:
    from services.validation import parse_id

    assert parse_id(text) == expected


@pytest.mark.parametrize("text", ["+٤٤٧٩١١١٢٣٤٥٦", "+44791112345²", "٤٤٧٩١١١٢٣٤٥٦"])
def test_normalize_phone_takes_ascii_digits_only(text: str) -> None:
    from services.errors import ValidationFailed
    from services.validation import normalize_phone

    with pytest.raises(ValidationFailed) as caught:
        normalize_phone(text)
    assert caught.value.detail == "phone_invalid"
