"""Balance, top-up, Telegram payments (card and Stars), invoices, history, the payment gate and
Stars refunds — through the real dispatcher and the Telegram stand-in."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Any

import pytest
from sqlalchemy import func, select, update

from bot.factory import create_bot, create_dispatcher, create_gateway
from keyboards.callbacks import CartCb, TopupCb
from keyboards.payments import TopupAmountCb, TopupCurrencyCb
from services.embedded import models as m
from tests.conftest import make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.telegram import Call, Chat, FakeTelegram, User

PROFILE = {
    "last_name": "Ivanov",
    "first_name": "Ivan",
    "email": "ivan@example.com",
    "city": "Moscow",
    "address": "Tverskaya 1",
}
PROVIDER_TOKEN = "284685063:TEST:provider-token"
NBSP = "\xa0"
YEAR = datetime.now(UTC).year
TODAY_EN = datetime.now(UTC).strftime("%b %-d, %Y")


@pytest.fixture(autouse=True)
def _today() -> None:
    """Dates as of the start of each test: a run may cross midnight UTC."""
    global YEAR, TODAY_EN
    now = datetime.now(UTC)
    YEAR, TODAY_EN = now.year, now.strftime("%b %-d, %Y")


@pytest.fixture
async def card_driver(sqlite_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[BotDriver]:
    """Like `driver`, with a card payment provider configured."""
    settings = make_settings(sqlite_url, payment_provider_token=PROVIDER_TOKEN)
    gw = create_gateway(settings)
    await gw.seed_demo()
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    drv = BotDriver(create_dispatcher(settings, gw), bot, fake_telegram, gw)
    yield drv
    drv.close()
    await gw.close()


async def customer(
    driver: BotDriver,
    user_id: int,
    *,
    language: str = "en",
    balance: int = 0,
    profile: bool = True,
    **values: Any,
) -> tuple[User, int]:
    user = driver.user(user_id, language_code=language)
    await driver.send(user, "/start")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(user_id)
        assert account is not None
        if profile or values:
            await billing.session.execute(
                update(m.Account)
                .where(m.Account.id == account.id)
                .values(**(PROFILE if profile else {}), **values)
            )
        if balance:
            await billing.credit(account.id, balance, kind="adjustment", actor="test")
    return user, account.id


async def balance_of(driver: BotDriver, account_id: int) -> tuple[int, int, int]:
    """(balance, ledger sum, number of ledger lines)."""
    async with driver.gateway.transaction() as billing:
        account = await billing.get_account(account_id)
        lines = await billing.session.scalar(
            select(func.count()).where(m.LedgerEntry.account_id == account_id)
        )
        return account.balance_minor, await billing.ledger_sum(account_id), int(lines or 0)


def only(calls: list[Call], method: str) -> Call:
    found = [c for c in calls if c.method == method and c.error is None]
    assert len(found) == 1, [(c.method, c.params) for c in calls]
    return found[0]


def screen(calls: list[Call]) -> Call:
    """The message the bot rendered (a sent or an edited one)."""
    found = [c for c in calls if c.method in ("sendMessage", "editMessageText") and c.error is None]
    assert found, [(c.method, c.params) for c in calls]
    return found[-1]


def alert(calls: list[Call]) -> str:
    return only(calls, "answerCallbackQuery")["text"]


# ---- balance --------------------------------------------------------------------------------
async def test_balance_in_every_currency_with_rates_en(driver: BotDriver) -> None:
    user, _ = await customer(driver, 601, balance=1250)
    shown = screen(await driver.send(user, "/balance"))
    assert shown.text == (
        "💰 <b>Balance: €12.50</b>\n\n"
        "In other currencies:\n"
        "≈ $13.50 (1 EUR = 1.08 USD)\n"
        "≈ ₽1,250.00 (1 EUR = 100 RUB)\n\n"
        "Exchange rates from the bot configuration."
    )
    assert shown.button_texts() == [
        "➕ Top up",
        "🧾 Invoices",
        "📜 Payment history",
        "⬅️ Main menu",
    ]


async def test_balance_in_the_display_currency_ru_and_in_the_main_menu(driver: BotDriver) -> None:
    user, _ = await customer(driver, 602, language="ru", balance=1250, currency="RUB")
    shown = screen(await driver.send(user, "/balance"))
    assert shown.text == (
        f"💰 <b>Баланс: 1{NBSP}250,00{NBSP}₽</b>\n\n"
        "В других валютах:\n"
        f"≈ 12,50{NBSP}€\n"
        f"≈ 13,50{NBSP}$ (1 EUR = 1,08 USD)\n\n"
        "Курсы валют из настроек бота."
    )
    assert shown.button_texts() == [
        "➕ Пополнить",
        "🧾 Счета",
        "📜 История платежей",
        "⬅️ Главное меню",
    ]
    menu = screen(await driver.send(user, "/menu"))
    assert menu.text == (
        "💼 <b>Личный кабинет</b>\nЛогин: <code>tg602</code>\n"
        f"Баланс: <b>1{NBSP}250,00{NBSP}₽ (12,50{NBSP}€)</b>\n\nВыберите раздел:"
    )


async def test_balance_menu_button_edits_in_place(driver: BotDriver) -> None:
    user, _ = await customer(driver, 603)
    menu = screen(await driver.send(user, "/menu"))
    calls = await driver.click(user, menu, "Balance")
    assert only(calls, "editMessageText").text.startswith("💰 <b>Balance: €0.00</b>")


# ---- top-up: amounts ------------------------------------------------------------------------
async def open_amount_prompt(driver: BotDriver, user: User, currency: str) -> Call:
    chooser = screen(await driver.send(user, "/topup"))
    return screen(await driver.click(user, chooser, currency))


async def test_topup_offers_every_currency_then_limits_and_presets(driver: BotDriver) -> None:
    user, _ = await customer(driver, 611)
    chooser = screen(await driver.send(user, "/topup"))
    assert chooser.text == "➕ <b>Top-up</b>\n\nChoose the currency to pay in:"
    assert chooser.button_texts() == [
        "EUR — Euro",
        "USD — US Dollar",
        "RUB — Russian Ruble",
        "⬅️ Back",
    ]
    prompt = screen(await driver.click(user, chooser, "USD"))
    # Without a card provider only Stars pay: 10 000 Stars at 50 per euro cap a top-up at €200.
    assert prompt.text == (
        "➕ <b>Top-up in USD</b>\n\nSend the amount from $1.10 to $210.00, or choose one below."
    )
    # Round figures in every currency: €1 and €200 are $1.08 and $216, the presets €10, €25,
    # €50 and €100 are $10.80, $27, $54 and $108.
    assert prompt.button_texts() == ["$10.00", "$25.00", "$50.00", "$100.00", "⬅️ Back"]


AMOUNT_CASES = [
    (
        "abc",
        "Please send the amount as a number, for example 25 or 25.50.",
        "Отправьте сумму числом, например 25 или 25,50.",
    ),
    (
        "12,5.0",
        "Please send the amount as a number, for example 25 or 25.50.",
        "Отправьте сумму числом, например 25 или 25,50.",
    ),
    ("0", "The amount must be greater than zero.", "Сумма должна быть больше нуля."),
    ("-5", "The amount must be greater than zero.", "Сумма должна быть больше нуля."),
    (
        "1.234",
        "Too many decimals: at most 2 digits after the point in EUR.",
        "Слишком много знаков после запятой: в EUR не больше 2 знаков.",
    ),
    ("0.99", "The minimum top-up is €1.00.", f"Минимальная сумма пополнения — 1,00{NBSP}€."),
    ("200.01", "The maximum top-up is €200.00.", f"Максимальная сумма пополнения — 200,00{NBSP}€."),
]


@pytest.mark.parametrize("language", ["en", "ru"])
@pytest.mark.parametrize(("text", "english", "russian"), AMOUNT_CASES)
async def test_amount_validation_messages(
    driver: BotDriver, language: str, text: str, english: str, russian: str
) -> None:
    user, account_id = await customer(driver, 612, language=language)
    await open_amount_prompt(driver, user, "EUR")
    calls = await driver.send(user, text)
    answer = only(calls, "sendMessage")
    assert answer.text == (english if language == "en" else russian)
    assert answer.button_texts() == (["⬅️ Back"] if language == "en" else ["⬅️ Назад"])
    async with driver.gateway.transaction() as billing:
        assert (await billing.list_invoices(account_id)).total == 0
    # still in the dialog: a good amount now creates the invoice
    created = screen(await driver.send(user, "100,5" if language == "ru" else "100.5"))
    assert created.text.startswith("🧾 <b>")


async def test_rouble_amount_with_a_space_and_a_comma(driver: BotDriver) -> None:
    user, _ = await customer(driver, 613)
    await open_amount_prompt(driver, user, "RUB")
    invoice = screen(await driver.send(user, "1 234,56"))
    assert invoice.text == (
        f"🧾 <b>Invoice No. {YEAR}-000001</b>\n"
        f"Date: {TODAY_EN}\n"
        "Purpose: balance top-up\n"
        "Amount: <b>₽1,234.56</b>\n"
        "Rate: 1 EUR = 100 RUB\n"
        "To the balance: €12.34\n"
        "Status: <b>unpaid</b>\n\n"
        "Choose how to pay:"
    )
    assert invoice.button_texts() == [
        "⭐ Go to payment: 617 Telegram Stars",
        "✖️ Cancel the invoice",
        "⬅️ Invoices",
    ]


# ---- the card flow, exactly once ------------------------------------------------------------
async def test_card_topup_end_to_end_credits_once(card_driver: BotDriver) -> None:
    driver = card_driver
    user, account_id = await customer(driver, 621)
    prompt = await open_amount_prompt(driver, user, "USD")
    assert prompt.text == (
        "➕ <b>Top-up in USD</b>\n\nSend the amount from $1.10 to $10,000.00, or choose one below."
    )
    invoice = screen(await driver.send(user, "27"))
    assert invoice.text.startswith(f"🧾 <b>Invoice No. {YEAR}-000001</b>\n")
    assert "Amount: <b>$27.00</b>\nRate: 1 EUR = 1.08 USD\nTo the balance: €25.00\n" in invoice.text
    assert invoice.button_texts() == [
        "💳 Go to payment: $27.00 by card",
        "⭐ Go to payment: 1,250 Telegram Stars",
        "✖️ Cancel the invoice",
        "⬅️ Invoices",
    ]
    calls = await driver.click(user, invoice, "by card")
    sent = only(calls, "sendInvoice")
    assert {
        k: sent[k]
        for k in (
            "chat_id",
            "title",
            "description",
            "payload",
            "currency",
            "prices",
            "provider_token",
        )
    } == {
        "chat_id": 621,
        "title": "Balance top-up",
        "description": f"Invoice No. {YEAR}-000001: €25.00 to the balance.",
        "payload": "inv:1",
        "currency": "USD",
        "prices": [{"label": "Balance top-up", "amount": 2700}],
        "provider_token": PROVIDER_TOKEN,
    }
    assert alert(calls) == "The invoice is below: tap “Pay”."

    answer = only(
        await driver.feed(driver.fake.pre_checkout(user, "USD", 2700, "inv:1")),
        "answerPreCheckoutQuery",
    )
    assert (answer["ok"], answer.get("error_message")) == (True, None)

    texts = []
    for _ in range(3):  # Telegram redelivers
        calls = await driver.feed(
            driver.fake.successful_payment(user, "USD", 2700, "inv:1", "tg-charge-621")
        )
        texts.append(only(calls, "sendMessage"))
    assert texts[0].text == (
        "✅ <b>Payment received</b>\n\n"
        f"Invoice No. {YEAR}-000001: $27.00\n"
        "Credited: €25.00\n"
        "Balance: <b>€25.00</b>"
    )
    assert texts[0].button_texts() == ["💰 Balance", "🧾 Invoices", "⬅️ Main menu"]
    assert [t.text for t in texts[1:]] == [
        "This payment has already been credited. Balance: <b>€25.00</b>"
    ] * 2
    assert await balance_of(driver, account_id) == (2500, 2500, 1)

    # the invoice is paid: a second pre-checkout for it is refused
    answer = only(
        await driver.feed(driver.fake.pre_checkout(user, "USD", 2700, "inv:1")),
        "answerPreCheckoutQuery",
    )
    assert (answer["ok"], answer["error_message"]) == (False, "This invoice has already been paid.")


async def test_stars_topup_with_a_preset_in_russian(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 622, language="ru")
    prompt = await open_amount_prompt(driver, user, "EUR")
    assert prompt.text == (
        "➕ <b>Пополнение в EUR</b>\n\n"
        f"Отправьте сумму от 1,00{NBSP}€ до 200,00{NBSP}€ или выберите ниже."
    )
    calls = await driver.click(user, prompt, f"10,00{NBSP}€")
    invoice = screen(calls)
    assert alert(calls) == "Счёт выставлен."
    assert invoice.button_texts() == [
        "⭐ Перейти к оплате: 500 звёзд Telegram",
        "✖️ Отменить счёт",
        "⬅️ Счета",
    ]
    sent = only(await driver.click(user, invoice, "⭐"), "sendInvoice")
    assert (sent["currency"], sent["prices"], sent["payload"], sent.get("provider_token")) == (
        "XTR",
        [{"label": "Пополнение баланса", "amount": 500}],
        "inv:1",
        None,
    )
    assert sent["description"] == f"Счёт № {YEAR}-000001: 10,00{NBSP}€ на баланс."
    answer = only(
        await driver.feed(driver.fake.pre_checkout(user, "XTR", 500, "inv:1")),
        "answerPreCheckoutQuery",
    )
    assert answer["ok"] is True
    for _ in range(3):
        calls = await driver.feed(
            driver.fake.successful_payment(user, "XTR", 500, "inv:1", "stars-622", "")
        )
    assert only(calls, "sendMessage").text == (
        f"Этот платёж уже зачислен. Баланс: <b>10,00{NBSP}€</b>"
    )
    assert await balance_of(driver, account_id) == (1000, 1000, 1)


# ---- pre-checkout ----------------------------------------------------------------------------
async def test_pre_checkout_rejections(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 631)
    _, other_id = await customer(driver, 632, language="ru")
    async with driver.gateway.transaction() as billing:
        mine = await billing.create_invoice(account_id, 1000, "EUR")
        theirs = await billing.create_invoice(other_id, 1000, "EUR")
        cancelled = await billing.create_invoice(account_id, 1000, "EUR")
        await billing.cancel_invoice(account_id, cancelled.id)

    async def pre_checkout(currency: str, total: int, payload: str, who: User = user) -> Any:
        calls = await driver.feed(driver.fake.pre_checkout(who, currency, total, payload))
        answer = only(calls, "answerPreCheckoutQuery")
        return answer["ok"], answer.get("error_message")

    not_found = "This invoice was not found. Please create a new one: /topup"
    mismatch = "The payment does not match the invoice. Please open the invoice again: /invoices"
    assert await pre_checkout("EUR", 1000, mine.payload) == (True, None)
    assert await pre_checkout("XTR", 500, mine.payload) == (True, None)
    assert await pre_checkout("EUR", 999, mine.payload) == (False, mismatch)
    assert await pre_checkout("USD", 1000, mine.payload) == (False, mismatch)
    assert await pre_checkout("XTR", 499, mine.payload) == (False, mismatch)
    assert await pre_checkout("EUR", 1000, theirs.payload) == (False, not_found)
    assert await pre_checkout("EUR", 1000, "inv:999") == (False, not_found)
    assert await pre_checkout("EUR", 1000, "something else") == (False, not_found)
    assert await pre_checkout("EUR", 1000, cancelled.payload) == (
        False,
        "This invoice was cancelled. Please create a new one: /topup",
    )
    async with driver.gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Account).where(m.Account.id == account_id).values(email=None, city="")
        )
    assert await pre_checkout("EUR", 1000, mine.payload) == (
        False,
        "Before paying, please fill in: e-mail, city.",
    )
    async with driver.gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Account)
            .where(m.Account.id == other_id)
            .values(profile_type="company", company_verified=False)
        )
    ru = User(id=632, language_code="ru")
    assert await pre_checkout("EUR", 1000, theirs.payload, ru) == (
        False,
        "Оплата заблокирована, пока наши сотрудники не проверят данные компании.",
    )


# ---- the payment gate -----------------------------------------------------------------------
async def test_gate_lists_what_is_missing_and_leads_there(driver: BotDriver) -> None:
    user, _ = await customer(driver, 641, profile=False, first_name="Ivan", city="Riga")
    shown = screen(await driver.send(user, "/topup"))
    assert shown.text == (
        "⛔ <b>Payment is not possible yet</b>\n\n"
        "Before paying, please fill in: last name, e-mail, address."
    )
    assert shown.button_texts() == ["✍️ Fill in the missing data", "⬅️ Main menu"]
    asked = screen(await driver.click(user, shown, "Fill in"))
    assert asked.text.startswith(
        "To pay, we still need: last name, e-mail, address.\n\n✍️ Step 1 of 3. Send your last name"
    )

    ru_user, _ = await customer(driver, 642, language="ru", profile=False)
    shown = screen(await driver.send(ru_user, "/topup"))
    assert shown.text == (
        "⛔ <b>Оплата пока невозможна</b>\n\n"
        "Перед оплатой заполните: фамилия, имя, e-mail, город, адрес."
    )
    assert shown.button_texts() == ["✍️ Заполнить недостающие данные", "⬅️ Главное меню"]


async def fill_in(driver: BotDriver, user: User, gate: Call) -> Call:
    """Through the guided fill-in the gate leads to (last name, e-mail, address missing)."""
    asked = screen(await driver.click(user, gate, "Fill in"))
    assert asked.text.startswith("To pay, we still need: last name, e-mail, address.")
    await driver.send(user, "Ivanov")
    await driver.send(user, "ivan@example.com")
    return screen(await driver.send(user, "Tverskaya 1"))


async def test_after_the_gates_fill_in_back_to_the_top_up(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 644, profile=False, first_name="Ivan", city="Riga")
    async with driver.gateway.transaction() as billing:
        await billing.save_cart(account_id, 4, 1)  # VPS 1, €4.90: the shortfall's order
    menu = screen(await driver.send(user, "/menu"))
    gate = screen(await driver.press(user, menu, TopupCb(amount_minor=490).pack()))
    assert gate.text.startswith("⛔ <b>Payment is not possible yet</b>")
    back = await fill_in(driver, user, gate)
    assert back.text == (
        "✅ Address saved: <b>Tverskaya 1</b>\n\n"
        "➕ <b>Top-up of €4.90</b>\n\nChoose the currency to pay in:"
    )
    invoice = screen(await driver.click(user, back, "EUR"))
    assert "Amount: <b>€4.90</b>\n" in invoice.text
    # The plain /topup gate comes back to the plain top-up.
    other, _ = await customer(driver, 645, profile=False, first_name="Ivan", city="Riga")
    gate = screen(await driver.send(other, "/topup"))
    back = await fill_in(driver, other, gate)
    assert back.text == (
        "✅ Address saved: <b>Tverskaya 1</b>\n\n➕ <b>Top-up</b>\n\nChoose the currency to pay in:"
    )


async def test_after_the_gates_fill_in_back_to_the_invoice(card_driver: BotDriver) -> None:
    driver = card_driver
    user, account_id = await customer(driver, 646, profile=False, first_name="Ivan", city="Riga")
    async with driver.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 2500, "EUR")
    listed = screen(await driver.send(user, "/invoices"))
    shown = screen(await driver.click(user, listed, invoice.number))
    gate = screen(await driver.click(user, shown, "by card"))
    assert gate.text.startswith("⛔ <b>Payment is not possible yet</b>")
    back = await fill_in(driver, user, gate)
    assert back.text.startswith(
        f"✅ Address saved: <b>Tverskaya 1</b>\n\n🧾 <b>Invoice No. {invoice.number}</b>\n"
    )
    calls = await driver.click(user, back, "by card")
    assert len([c for c in calls if c.method == "sendInvoice"]) == 1
    # An old gate button after everything is filled in goes straight back as well.
    again = screen(await driver.click(user, gate, "Fill in"))
    assert again.text.startswith(f"🧾 <b>Invoice No. {invoice.number}</b>\n")


async def test_gate_for_an_unverified_company_on_the_pay_button(card_driver: BotDriver) -> None:
    driver = card_driver
    user, account_id = await customer(driver, 643)
    invoice_screen = screen(await driver.send(user, "/topup"))
    invoice_screen = screen(await driver.click(user, invoice_screen, "EUR"))
    invoice_screen = screen(await driver.send(user, "50"))
    async with driver.gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Account).where(m.Account.id == account_id).values(profile_type="company")
        )
    calls = await driver.click(user, invoice_screen, "by card")
    assert [c for c in calls if c.method == "sendInvoice"] == []
    shown = screen(calls)
    assert shown.text == (
        "⛔ <b>Payment is not possible yet</b>\n\n"
        "Payments are blocked until our staff verify your company details."
    )
    assert shown.button_texts() == ["💬 Write to support", "⬅️ Main menu"]


# ---- shortfall buttons from orders and alerts -----------------------------------------------
async def test_topup_exactly_the_shortfall(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 651)
    menu = screen(await driver.send(user, "/menu"))
    chooser = screen(await driver.press(user, menu, TopupCb(amount_minor=1234).pack()))
    assert chooser.text == "➕ <b>Top-up of €12.34</b>\n\nChoose the currency to pay in:"
    calls = await driver.click(user, chooser, "RUB")
    invoice = screen(calls)
    assert "Amount: <b>₽1,234.00</b>\n" in invoice.text
    assert "To the balance: €12.34\n" in invoice.text
    # a shortfall below the minimum is raised to it, and the invoice says so; 0 lets the user
    # choose
    chooser = screen(await driver.press(user, menu, TopupCb(amount_minor=5).pack()))
    invoice = screen(await driver.click(user, chooser, "USD"))
    assert invoice.text.startswith(
        "ℹ️ $0.06 is missing, but the minimum top-up is $1.10: the invoice is for $1.10, and "
        "the rest stays on your balance.\n\n🧾 <b>Invoice No. "
    )
    assert "Amount: <b>$1.10</b>\n" in invoice.text and "To the balance: €1.01\n" in invoice.text
    chooser = screen(await driver.press(user, menu, TopupCb(amount_minor=0).pack()))
    assert chooser.text == "➕ <b>Top-up</b>\n\nChoose the currency to pay in:"
    # above what one top-up may be: the user is asked for an amount
    chooser = screen(await driver.press(user, menu, TopupCb(amount_minor=50000).pack()))
    prompt = screen(await driver.click(user, chooser, "EUR"))
    assert prompt.text.startswith("The maximum top-up is €200.00.\n\n➕ <b>Top-up in EUR</b>")
    async with driver.gateway.transaction() as billing:
        assert (await billing.list_invoices(account_id)).total == 2


async def test_after_payment_a_waiting_cart_can_be_completed(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 652)
    async with driver.gateway.transaction() as billing:
        tariff = (await billing.list_tariffs())[0]
        await billing.save_cart(account_id, tariff.id, tariff.prices[0].months)
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
    calls = await driver.feed(
        driver.fake.successful_payment(user, "XTR", 500, invoice.payload, "cart-652")
    )
    message = only(calls, "sendMessage")
    assert message.text.endswith("\n\nYour order is waiting: complete it now from the balance.")
    assert message.button_texts() == [
        "🛒 Complete the order",
        "💰 Balance",
        "🧾 Invoices",
        "⬅️ Main menu",
    ]
    assert message.callback_data("Complete") == CartCb(action="receipt").pack()


async def test_completing_the_order_from_a_receipt_keeps_the_receipt(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 653)
    async with driver.gateway.transaction() as billing:
        await billing.save_cart(account_id, 4, 1)  # VPS 1, €4.90
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
    calls = await driver.feed(
        driver.fake.successful_payment(user, "XTR", 500, invoice.payload, "cart-653")
    )
    receipt = only(calls, "sendMessage")
    receipt_id = receipt.result["message_id"]
    calls = await driver.click(user, receipt, "Complete the order")
    assert [c.method for c in calls if c.method == "editMessageText"] == []
    created = only(calls, "sendMessage")
    assert created.text.startswith("✅ <b>Order #")
    assert "VPS 1, 1 month — €4.90 paid from the balance." in created.text
    assert only(calls, "answerCallbackQuery")["text"] == "The order is placed."
    kept = driver.fake.messages[(user.id, receipt_id)]
    assert kept["text"] == receipt.text  # the receipt is still the receipt
    assert [b["text"] for row in kept["reply_markup"]["inline_keyboard"] for b in row] == [
        "💰 Balance",
        "🧾 Invoices",
        "⬅️ Main menu",
    ]
    async with driver.gateway.transaction() as billing:
        assert (await billing.list_orders(account_id)).total == 1
        assert await billing.get_cart(account_id) is None
    # A second press (an old copy of the button) changes nothing and keeps the receipt.
    again = await driver.press(user, receipt, CartCb(action="receipt").pack())
    assert only(again, "answerCallbackQuery")["text"] == "There is no saved order to complete."
    assert [c.method for c in again if c.method in ("sendMessage", "editMessageText")] == []
    assert driver.fake.messages[(user.id, receipt_id)]["text"] == receipt.text


# ---- invoices and history -------------------------------------------------------------------
async def test_invoices_are_paged_and_can_be_opened_and_cancelled(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 661)
    async with driver.gateway.transaction() as billing:
        for amount in range(100, 800, 100):
            await billing.create_invoice(account_id, amount * 10, "EUR")
        await billing.record_payment(
            account_id, 1, currency="EUR", total_amount=1000, charge_id="c661"
        )
    first = screen(await driver.send(user, "/invoices"))
    assert first.text == (
        "🧾 <b>Invoices</b> — page 1 of 2\n\n"
        f"⏳ {YEAR}-000007 · {TODAY_EN} · €70.00 · unpaid\n"
        f"⏳ {YEAR}-000006 · {TODAY_EN} · €60.00 · unpaid\n"
        f"⏳ {YEAR}-000005 · {TODAY_EN} · €50.00 · unpaid\n"
        f"⏳ {YEAR}-000004 · {TODAY_EN} · €40.00 · unpaid\n"
        f"⏳ {YEAR}-000003 · {TODAY_EN} · €30.00 · unpaid"
    )
    assert first.button_texts() == [
        f"⏳ {YEAR}-000007 · €70.00",
        f"⏳ {YEAR}-000006 · €60.00",
        f"⏳ {YEAR}-000005 · €50.00",
        f"⏳ {YEAR}-000004 · €40.00",
        f"⏳ {YEAR}-000003 · €30.00",
        "▶️",
        "📜 Payment history",
        "➕ Top up",
        "⬅️ Main menu",
    ]
    second = screen(await driver.click(user, first, "▶️"))
    assert second.text == (
        "🧾 <b>Invoices</b> — page 2 of 2\n\n"
        f"⏳ {YEAR}-000002 · {TODAY_EN} · €20.00 · unpaid\n"
        f"✅ {YEAR}-000001 · {TODAY_EN} · €10.00 · paid"
    )
    assert second.button_texts()[2:4] == ["◀️", "📜 Payment history"]
    paid = screen(await driver.click(user, second, "000001"))
    assert paid.text == (
        f"🧾 <b>Invoice No. {YEAR}-000001</b>\n"
        f"Date: {TODAY_EN}\n"
        "Purpose: balance top-up\n"
        "Amount: <b>€10.00</b>\n"
        "To the balance: €10.00\n"
        "Status: <b>paid</b>\n"
        f"Paid on {TODAY_EN} by card"
    )
    assert paid.button_texts() == ["⬅️ Invoices"]
    back = screen(await driver.click(user, paid, "Invoices"))
    assert back.text.startswith("🧾 <b>Invoices</b> — page 2 of 2")
    opened = screen(await driver.click(user, back, "000002"))
    calls = await driver.click(user, opened, "Cancel the invoice")
    assert alert(calls) == "The invoice was cancelled."
    assert "Status: <b>cancelled</b>" in screen(calls).text
    assert screen(calls).button_texts() == ["⬅️ Invoices"]
    # a stale button of the cancelled invoice
    stale = await driver.press(user, opened, opened.callback_data("Stars"))
    assert alert(stale) == "This invoice is cancelled: there is nothing to pay."
    # a forged button for another account's invoice
    _, other_id = await customer(driver, 662)
    async with driver.gateway.transaction() as billing:
        foreign = await billing.create_invoice(other_id, 1000, "EUR")
    forged = await driver.press(user, first, f"inv:view:{foreign.id}:0")
    assert alert(forged) == "Not found. It may have been removed, or it is not yours."


async def test_no_invoices_and_no_history_in_russian(driver: BotDriver) -> None:
    user, _ = await customer(driver, 663, language="ru")
    invoices = screen(await driver.send(user, "/invoices"))
    assert invoices.text == (
        "🧾 <b>Счета</b>\n\nСчетов пока нет. Пополните баланс, чтобы выставить счёт."
    )
    history = screen(await driver.click(user, invoices, "История платежей"))
    assert history.text == (
        f"📜 <b>История платежей</b>\n\nПлатежей пока нет.\n\nБаланс: <b>0,00{NBSP}€</b>"
    )
    assert history.button_texts() == ["🧾 Счета", "💰 Баланс", "⬅️ Главное меню"]


async def test_history_pages_the_ledger_with_reasons(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 664)
    async with driver.gateway.transaction() as billing:
        for _ in range(9):
            await billing.credit(account_id, 100, kind="topup")
        await billing.debit(account_id, 250, kind="order")
        await billing.debit(account_id, 50, kind="renewal")
        await billing.credit(account_id, 5, kind="adjustment", actor="staff")
    first = screen(await driver.send(user, "/history"))
    lines = first.text.split("\n")
    assert lines[0] == "📜 <b>Payment history</b> — page 1 of 2"
    assert lines[2:6] == [
        f"{TODAY_EN} · +€0.05 · manual adjustment",
        f"{TODAY_EN} · −€0.50 · renewal",
        f"{TODAY_EN} · −€2.50 · order",
        f"{TODAY_EN} · +€1.00 · top-up",
    ]
    assert len(lines) == 2 + 10 + 2 and lines[-1] == "Balance: <b>€6.05</b>"
    assert first.button_texts() == ["▶️", "🧾 Invoices", "💰 Balance", "⬅️ Main menu"]
    second = screen(await driver.click(user, first, "▶️"))
    assert second.text == (
        "📜 <b>Payment history</b> — page 2 of 2\n\n"
        f"{TODAY_EN} · +€1.00 · top-up\n"
        f"{TODAY_EN} · +€1.00 · top-up\n\n"
        "Balance: <b>€6.05</b>"
    )
    assert second.button_texts()[0] == "◀️"


async def test_history_shows_the_balance_in_the_chosen_currency(driver: BotDriver) -> None:
    """Like the main menu: the display currency, with the base amount beside it."""
    user, account_id = await customer(driver, 666, balance=5000)
    async with driver.gateway.transaction() as billing:
        await billing.set_currency(account_id, "USD")
    menu = screen(await driver.send(user, "/menu"))
    assert "Balance: <b>$54.00 (€50.00)</b>" in menu.text
    history = screen(await driver.send(user, "/history"))
    assert history.text.endswith("\n\nBalance: <b>$54.00 (€50.00)</b>")


async def test_order_invoice_paid_from_the_balance(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 665, balance=3000)
    async with driver.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 2000, "EUR", purpose="order")
    listing = screen(await driver.send(user, "/invoices"))
    opened = screen(await driver.click(user, listing, "000001"))
    assert "Purpose: order payment\n" in opened.text
    assert opened.button_texts() == [
        "⭐ Go to payment: 1,000 Telegram Stars",
        "💰 Pay from the balance",
        "✖️ Cancel the invoice",
        "⬅️ Invoices",
    ]
    calls = await driver.click(user, opened, "Pay from the balance")
    assert alert(calls) == "Paid from the balance."
    assert "Status: <b>paid</b>\nPaid on" in screen(calls).text
    assert screen(calls).text.endswith("from the balance")
    assert await balance_of(driver, account_id) == (1000, 1000, 2)
    assert invoice.id == 1


# ---- Stars refunds --------------------------------------------------------------------------
async def test_staff_refund_of_a_stars_payment(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 671, language="ru")
    async with driver.gateway.transaction() as billing:
        await billing.set_language(account_id, "ru")  # the customer is told in their language
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
    await driver.feed(driver.fake.successful_payment(user, "XTR", 500, invoice.payload, "st-671"))
    staff_chat = driver.fake.add_chat(Chat(id=-1001, type="supergroup", title="Staff"))
    admin = User(id=9001, first_name="Admin")

    driver.fake.fail_next("refundStarPayment", 400, "Bad Request: CHARGE_NOT_FOUND")
    calls = await driver.send(admin, "/refund st-671", chat=staff_chat)
    assert only(calls, "sendMessage").text == (
        "Telegram refused the refund: Bad Request: CHARGE_NOT_FOUND. "
        "The customer's balance is as it was."
    )
    # the refund was held first and given back: two ledger lines, the same balance
    assert await balance_of(driver, account_id) == (1000, 1000, 3)

    calls = await driver.send(admin, "/refund st-671", chat=staff_chat)
    assert driver.fake.refunds == [(671, "st-671")]
    replies = [c for c in calls if c.method == "sendMessage"]
    assert [(r["chat_id"], r.text) for r in replies] == [
        (-1001, "↩️ Refunded 500 ⭐ to tg671; €10.00 was taken off the balance."),
        (671, f"↩️ Ваш платёж на 500 ⭐ возвращён; с баланса списано 10,00{NBSP}€."),
    ]
    assert await balance_of(driver, account_id) == (0, 0, 4)
    again = await driver.send(admin, "/refund st-671", chat=staff_chat)
    assert only(again, "sendMessage").text == "This payment has already been refunded."
    unknown = await driver.send(admin, "/refund nope", chat=staff_chat)
    assert only(unknown, "sendMessage").text == "No payment with this charge id."
    usage = await driver.send(admin, "/refund", chat=staff_chat)
    assert only(usage, "sendMessage").text == (
        "Usage: /refund <code>charge_id</code> (the telegram_payment_charge_id)."
    )
    # customers cannot refund themselves: in a private chat /refund is a staff-group command
    own = await driver.send(user, "/refund st-671")
    assert driver.fake.refunds == [(671, "st-671")]
    assert [(c.method, c["chat_id"], c.text) for c in own] == [
        (
            "sendMessage",
            671,
            "Эта команда — для сотрудников поддержки и работает только в группе поддержки.",
        )
    ]


async def test_dialog_edges_photos_commands_and_forged_buttons(driver: BotDriver) -> None:
    user, account_id = await customer(driver, 681)
    prompt = await open_amount_prompt(driver, user, "EUR")
    photo = only(await driver.send(user, photo="AgACAgIAAxkBAAIBQ2Zphoto12345678"), "sendMessage")
    assert photo.text == "Please send the amount as a number, for example 25 or 25.50."
    # a command in the middle of the dialog is that command, and ends the dialog
    assert screen(await driver.send(user, "/balance")).text.startswith("💰 <b>Balance: €0.00</b>")
    assert screen(await driver.send(user, "25")).text.startswith("I did not understand that.")
    # forged or stale buttons
    calls = await driver.press(user, prompt, TopupAmountCb(currency="EUR", amount_minor=1).pack())
    assert alert(calls) == "This amount is not available any more."
    calls = await driver.press(user, prompt, TopupAmountCb(currency="GBP", amount_minor=500).pack())
    assert alert(calls) == "Top-ups in GBP are not available now."
    calls = await driver.press(user, prompt, TopupCurrencyCb(currency="XTR").pack())
    assert alert(calls) == "Top-ups in XTR are not available now."
    async with driver.gateway.transaction() as billing:
        assert (await billing.list_invoices(account_id)).total == 0


async def test_telegram_refusing_the_invoice_is_explained(card_driver: BotDriver) -> None:
    driver = card_driver
    user, _ = await customer(driver, 682)
    await open_amount_prompt(driver, user, "RUB")
    invoice = screen(await driver.send(user, "500"))
    driver.fake.fail_next("sendInvoice", 400, "Bad Request: CURRENCY_TOTAL_AMOUNT_INVALID")
    calls = await driver.click(user, invoice, "by card")
    assert alert(calls) == "Telegram could not open this payment. Please try another way to pay."
    sent = only(await driver.click(user, invoice, "by card"), "sendInvoice")
    assert (sent["currency"], sent["prices"]) == (
        "RUB",
        [{"label": "Balance top-up", "amount": 50000}],
    )


async def test_a_payment_matching_no_invoice_is_reported_not_lost(
    driver: BotDriver, caplog: pytest.LogCaptureFixture
) -> None:
    user, account_id = await customer(driver, 683)
    _, other_id = await customer(driver, 684)
    async with driver.gateway.transaction() as billing:
        foreign = await billing.create_invoice(other_id, 1000, "EUR")
    for payload in ("garbage", foreign.payload):
        calls = await driver.feed(
            driver.fake.successful_payment(user, "EUR", 1000, payload, f"x-{payload}")
        )
        assert only(calls, "sendMessage").text == (
            "We received your payment but could not match it to an invoice. "
            "Support will sort it out: please write to us with /newticket."
        )
    assert [r.getMessage().split(",")[0] for r in caplog.records if r.levelname == "ERROR"] == [
        "Unmatched payment: payload 'garbage'",
        "Unmatched payment: payload 'inv:1'",
    ]
    assert await balance_of(driver, account_id) == (0, 0, 0)
