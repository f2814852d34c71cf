"""The Orders and New order sections through the real dispatcher, in English and Russian."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

from babel.dates import format_date
from sqlalchemy import update

from keyboards.orders import stamp as to_stamp
from services.contracts.orders import Order
from services.embedded import models as m
from services.embedded.orders import add_months
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, User

DS_START, DS_PRO, VPS_1, VPS_2, VPS_4 = 1, 2, 4, 5, 6
NBSP = "\xa0"


def d(value: datetime, locale: str = "en") -> str:
    return format_date(value, format="medium", locale=locale)


def edited(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "editMessageText" and c.error is None)


def answered(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "answerCallbackQuery")


async def account_with(driver: BotDriver, user: User, balance: int = 0) -> int:
    await driver.send(user, "/start")
    async with driver.gateway.transaction() as billing:
        account = await billing.find_account_by_telegram(user.id)
        assert account is not None
        if balance:
            await billing.credit(account.id, balance, kind="topup")
        return account.id


async def order_for(
    driver: BotDriver, account_id: int, tariff_id: int, months: int = 1, **values: object
) -> Order:
    """An order placed through the billing (paid), then adjusted (paid_until, status...)."""
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 100000, kind="adjustment")
        order = await billing.place_order(account_id, tariff_id, months)
        await billing.debit(account_id, 100000 - order.price_minor, kind="adjustment")
        if values:
            await billing.session.execute(
                update(m.Order).where(m.Order.id == order.id).values(**values)
            )
    async with driver.gateway.transaction() as billing:
        return await billing.get_order(account_id, order.id)


async def balance(driver: BotDriver, account_id: int) -> int:
    async with driver.gateway.transaction() as billing:
        account = await billing.get_account(account_id)
        assert account.balance_minor == await billing.ledger_sum(account_id)
        return account.balance_minor


async def get(driver: BotDriver, account_id: int, order_id: int) -> Order:
    async with driver.gateway.transaction() as billing:
        return await billing.get_order(account_id, order_id)


def soon(days: int, hours: int = 0) -> datetime:
    return (datetime.now(UTC) + timedelta(days=days, hours=hours)).replace(microsecond=0)


# ---- new order ---------------------------------------------------------------------------------
async def test_new_order_paid_from_the_balance(driver: BotDriver) -> None:
    user = driver.user(701)
    account_id = await account_with(driver, user, balance=5000)
    start = (await driver.send(user, "/neworder"))[-1]
    assert start.text == "🛒 <b>New order</b>\n\nChoose a product:"
    assert start.button_texts() == ["🖥 Dedicated servers", "☁️ VPS/VDS", "⬅️ Main menu"]

    tariffs = edited(await driver.click(user, start, "VPS/VDS"))
    assert tariffs["message_id"] == start.result["message_id"]
    assert tariffs.text == (
        "☁️ VPS/VDS\n\n"
        "<b>VPS 1</b> — from €4.90 / 1 month\n1 vCPU · 1 GB RAM · 20 GB NVMe · 100 Mbps\n\n"
        "<b>VPS 2</b> — from €9.90 / 1 month\n2 vCPU · 2 GB RAM · 40 GB NVMe · 200 Mbps\n\n"
        "<b>VPS 4</b> — from €19.90 / 1 month\n4 vCPU · 8 GB RAM · 120 GB NVMe · 500 Mbps\n\n"
        "Choose a tariff:"
    )
    assert tariffs.button_texts() == [
        "VPS 1 — €4.90 / 1 month",
        "VPS 2 — €9.90 / 1 month",
        "VPS 4 — €19.90 / 1 month",
        "⬅️ Back",
    ]
    periods = edited(await driver.click(user, tariffs, "VPS 2"))
    assert periods.text == (
        "🛒 <b>VPS 2</b> (☁️ VPS/VDS)\n2 vCPU · 2 GB RAM · 40 GB NVMe · 200 Mbps\n\nChoose a period:"
    )
    assert periods.button_texts() == [
        "1 month — €9.90",
        "3 months — €28.81",
        "6 months — €56.43",
        "12 months — €106.92",
        "⬅️ Back",
    ]
    confirm = edited(await driver.click(user, periods, "3 months"))
    assert confirm.text == (
        "🛒 <b>Confirm the order</b>\nTariff: VPS 2 (☁️ VPS/VDS)\n"
        "2 vCPU · 2 GB RAM · 40 GB NVMe · 200 Mbps\nPeriod: 3 months\nPrice: €28.81\n"
        "Balance: €50.00\n\n"
        "The price is debited from the balance and the server gets its IP address at once."
    )
    assert confirm.button_texts() == ["✅ Pay €28.81", "⬅️ Back"]
    calls = await driver.click(user, confirm, "Pay")
    async with driver.gateway.transaction() as billing:
        orders = (await billing.list_orders(account_id)).items
    assert len(orders) == 1
    order = orders[0]
    assert (order.tariff_name, order.period_months, order.status) == ("VPS 2", 3, "active")
    assert order.ip_address == "203.0.113.10"
    done = edited(calls)
    assert done.text == (
        f"✅ <b>Order #{order.id} is active</b>\n"
        "VPS 2, 3 months — €28.81 paid from the balance.\n"
        "IP address: <code>203.0.113.10</code>\n"
        f"Paid until: {d(order.paid_until)}"
    )
    assert done.button_texts() == ["📦 Open the order", "📦 My orders", "⬅️ Main menu"]
    assert answered(calls)["text"] == "The order is placed."
    # A second press of the same "Pay" button (a double tap) creates nothing more, although
    # the balance (€21.19) no longer covers the price: it is the same order, no cart.
    again = await driver.press(user, confirm, confirm.callback_data("Pay"))
    assert answered(again)["text"] == "The order is placed."
    async with driver.gateway.transaction() as billing:
        assert (await billing.list_orders(account_id)).total == 1
        assert await billing.get_cart(account_id) is None
    assert await balance(driver, account_id) == 5000 - 2881
    # The same message walked through the flow again is a new confirmation: a second order.
    menu = edited(await driver.click(user, done, "Main menu"))
    start = edited(await driver.click(user, menu, "New order"))
    tariffs = edited(await driver.click(user, start, "VPS/VDS"))
    periods = edited(await driver.click(user, tariffs, "VPS 1"))
    confirm = edited(await driver.click(user, periods, "1 month"))
    assert confirm["message_id"] == done["message_id"]
    await driver.click(user, confirm, "Pay")
    async with driver.gateway.transaction() as billing:
        assert (await billing.list_orders(account_id)).total == 2
    assert await balance(driver, account_id) == 5000 - 2881 - 490


async def test_new_order_without_money_saves_the_cart_ru(driver: BotDriver) -> None:
    user = driver.user(702, language_code="ru")
    account_id = await account_with(driver, user, balance=1000)
    start = (await driver.send(user, "/neworder"))[-1]
    assert start.text == "🛒 <b>Новый заказ</b>\n\nВыберите продукт:"
    assert start.button_texts() == ["🖥 Выделенные серверы", "☁️ VPS/VDS", "⬅️ Главное меню"]
    tariffs = edited(await driver.click(user, start, "VPS/VDS"))
    periods = edited(await driver.click(user, tariffs, "VPS 2"))
    assert periods.button_texts() == [
        f"1 месяц — 9,90{NBSP}€",
        f"3 месяца — 28,81{NBSP}€",
        f"6 месяцев — 56,43{NBSP}€",
        f"12 месяцев — 106,92{NBSP}€",
        "⬅️ Назад",
    ]
    confirm = edited(await driver.click(user, periods, "3 месяца"))
    short = edited(await driver.click(user, confirm, "Оплатить"))
    assert short.text == (
        "🛒 <b>Недостаточно средств для заказа</b>\n"
        f"VPS 2, 3 месяца — 28,81{NBSP}€\n"
        f"Баланс: 10,00{NBSP}€. Не хватает: 18,81{NBSP}€.\n\n"
        "Заказ сохранён: пополните баланс и оформите его одним нажатием."
    )
    assert short.button_texts() == [
        f"💳 Пополнить на 18,81{NBSP}€",
        "✅ Оформить заказ",
        "🗑 Удалить заказ",
        "⬅️ Главное меню",
    ]
    assert short.callback_data("Пополнить") == "tu:1881"
    assert short.callback_data("Оформить") == "cart:complete"
    async with driver.gateway.transaction() as billing:
        cart = await billing.get_cart(account_id)
        assert cart is not None and (cart.tariff_id, cart.months) == (VPS_2, 3)
        assert (await billing.list_orders(account_id)).total == 0
    assert await balance(driver, account_id) == 1000

    # Completing before the top-up keeps the same shortfall screen and changes nothing.
    again = await driver.click(user, short, "Оформить")
    assert [c.method for c in again if c.error is None] == ["answerCallbackQuery"]
    assert driver.screen(user.id)["text"] == short.text
    # The cart is shown when the section is opened again.
    reopened = (await driver.send(user, "/neworder"))[-1]
    assert reopened.text == (
        "🛒 <b>Новый заказ</b>\n"
        f"🧺 Сохранённый заказ: VPS 2, 3 месяца — 28,81{NBSP}€\n\nВыберите продукт:"
    )
    assert reopened.button_texts()[:2] == [
        "✅ Оформить сохранённый заказ",
        "🗑 Удалить сохранённый заказ",
    ]
    # After a top-up (the payments section shows CartCb "complete"), one tap finishes it.
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 2000, kind="topup")
    calls = await driver.click(user, reopened, "Оформить сохранённый заказ")
    async with driver.gateway.transaction() as billing:
        orders = (await billing.list_orders(account_id)).items
        assert await billing.get_cart(account_id) is None
    assert [(o.tariff_id, o.period_months, o.status) for o in orders] == [(VPS_2, 3, "active")]
    assert edited(calls).text.startswith(f"✅ <b>Заказ #{orders[0].id} активен</b>\n")
    assert answered(calls)["text"] == "Заказ оформлен."
    assert await balance(driver, account_id) == 3000 - 2881
    # The same button again: the cart is gone, nothing is charged.
    calls = await driver.click(user, reopened, "Оформить сохранённый заказ")
    assert answered(calls)["text"] == "Нет сохранённого заказа для оформления."
    assert await balance(driver, account_id) == 3000 - 2881


async def test_dropping_the_cart(driver: BotDriver) -> None:
    user = driver.user(703)
    account_id = await account_with(driver, user)
    async with driver.gateway.transaction() as billing:
        await billing.save_cart(account_id, DS_START, 1)
    start = (await driver.send(user, "/neworder"))[-1]
    assert start.text == (
        "🛒 <b>New order</b>\n🧺 Saved order: DS Start, 1 month — €79.00\n\nChoose a product:"
    )
    calls = await driver.click(user, start, "Drop the saved order")
    assert answered(calls)["text"] == "The saved order was dropped."
    assert edited(calls).text == "🛒 <b>New order</b>\n\nChoose a product:"
    async with driver.gateway.transaction() as billing:
        assert await billing.get_cart(account_id) is None


# ---- list, paging, search, sort ---------------------------------------------------------------
async def test_list_pages_are_edited_in_place(driver: BotDriver) -> None:
    user = driver.user(710)
    account_id = await account_with(driver, user)
    orders = [await order_for(driver, account_id, VPS_1) for _ in range(7)]
    first = (await driver.send(user, "/orders"))[-1]
    newest = orders[::-1]
    assert first.button_texts() == [
        *(f"#{o.id} · VPS 1" for o in newest[:5]),
        "Next ▶️",
        "🔍 Search",
        "↕️ Sort",
        "🛒 New order",
        "⬅️ Main menu",
    ]
    assert first.text.startswith("📦 <b>Your orders</b>: 7\nSorted by creation date ↓\n\n")
    assert first.text.endswith("\n\nPage 1 of 2")
    second = edited(await driver.click(user, first, "Next"))
    assert second["message_id"] == first.result["message_id"]
    assert second.button_texts()[:3] == [f"#{o.id} · VPS 1" for o in newest[5:]] + ["◀️ Previous"]
    assert second.text.endswith("\n\nPage 2 of 2")
    back = edited(await driver.click(user, second, "Previous"))
    assert back.text == first.text


async def test_list_row_shows_every_field_en_and_ru(driver: BotDriver) -> None:
    user = driver.user(711)
    account_id = await account_with(driver, user)
    paid_until = soon(2, 3)
    order = await order_for(driver, account_id, DS_PRO, 3, paid_until=paid_until)
    text = (await driver.send(user, "/orders"))[-1].text
    assert text == (
        "📦 <b>Your orders</b>: 1\nSorted by creation date ↓\n\n"
        f"<b>#{order.id}</b> · DS Pro · <code>203.0.113.10</code>\n"
        f"✅ Active · paid until {d(paid_until)} · 3 days left\n"
        "€375.39 / 3 months · €125.13 a month"
    )
    ru_user = driver.user(712, language_code="ru")
    ru_account = await account_with(driver, ru_user)
    expired_at = soon(-1)
    ru_order = await order_for(
        driver, ru_account, VPS_1, 1, paid_until=expired_at, status="expired"
    )
    text = (await driver.send(ru_user, "/orders"))[-1].text
    assert text == (
        "📦 <b>Ваши заказы</b>: 1\nСортировка: дата создания ↓\n\n"
        f"<b>#{ru_order.id}</b> · VPS 1 · <code>203.0.113.11</code>\n"
        f"⚠️ Просрочен · оплачен до {d(expired_at, 'ru')}\n"
        f"4,90{NBSP}€ / 1 месяц"
    )


async def test_days_left_is_plural_correct(driver: BotDriver) -> None:
    user_en, user_ru = driver.user(713), driver.user(714, language_code="ru")
    en_id, ru_id = await account_with(driver, user_en), await account_with(driver, user_ru)
    expected_en = {1: "1 day left", 2: "2 days left", 5: "5 days left", 21: "21 days left"}
    expected_ru = {
        1: "остался 1 день",
        2: "осталось 2 дня",
        5: "осталось 5 дней",
        21: "остался 21 день",
    }
    for days in (1, 2, 5, 21):
        paid_until = soon(days - 1, 12)  # a started day counts: days - 1 full days + 12 h
        en = await order_for(driver, en_id, VPS_1, paid_until=paid_until)
        ru = await order_for(driver, ru_id, VPS_1, paid_until=paid_until)
        en_text = edited(await driver.press(user_en, _menu(driver, user_en), f"od:view:{en.id}"))
        ru_text = edited(await driver.press(user_ru, _menu(driver, user_ru), f"od:view:{ru.id}"))
        assert f"Paid until: {d(paid_until)} ({expected_en[days]})\n" in en_text.text
        assert f"Оплачен до: {d(paid_until, 'ru')} ({expected_ru[days]})\n" in ru_text.text


def _menu(driver: BotDriver, user: User) -> Call:
    return driver.screen_call(user.id)


async def test_search_by_button_and_by_command(driver: BotDriver) -> None:
    user = driver.user(720)
    account_id = await account_with(driver, user)
    vps = await order_for(driver, account_id, VPS_2)
    ds = await order_for(driver, account_id, DS_START)
    listing = (await driver.send(user, "/orders"))[-1]
    prompt = edited(await driver.click(user, listing, "Search"))
    assert prompt.text == "🔍 Send an order ID, a tariff name or an IP address to search for:"
    assert prompt.button_texts() == ["⬅️ Back to orders"]
    found = (await driver.send(user, "vps 2"))[-1]
    assert found.text.startswith("📦 <b>Your orders</b>: 1\nSorted by creation date ↓\n")
    assert "Search: «vps 2»\n\n" in found.text
    assert found.button_texts() == [
        f"#{vps.id} · VPS 2",
        "🔍 Search",
        "↕️ Sort",
        "✖️ Clear search",
        "🛒 New order",
        "⬅️ Main menu",
    ]
    by_ip = (await driver.send(user, "/orders 203.0.113.11"))[-1]
    assert by_ip.button_texts()[0] == f"#{ds.id} · DS Start"
    by_id = (await driver.send(user, f"/orders #{vps.id}"))[-1]
    assert by_id.button_texts()[0] == f"#{vps.id} · VPS 2"
    none = (await driver.send(user, "/orders <nothing>"))[-1]
    assert none.text == "🔍 No orders match «&lt;nothing&gt;»."
    assert none.button_texts() == ["🔍 Search again", "✖️ Clear search", "⬅️ Main menu"]
    cleared = edited(await driver.click(user, none, "Clear search"))
    assert cleared.text.startswith("📦 <b>Your orders</b>: 2\n")
    too_long = await driver.send(user, "/orders " + "x" * 65)
    assert too_long[-1].text == "The search text is too long: at most 64 characters."


async def test_no_match_in_russian(driver: BotDriver) -> None:
    user = driver.user(721, language_code="ru")
    account_id = await account_with(driver, user)
    await order_for(driver, account_id, VPS_1)
    reply = (await driver.send(user, "/orders dedicated-xyz"))[-1]
    assert reply.text == "🔍 По запросу «dedicated-xyz» заказов не найдено."
    assert reply.button_texts() == ["🔍 Искать снова", "✖️ Сбросить поиск", "⬅️ Главное меню"]


async def test_no_orders_yet(driver: BotDriver) -> None:
    user = driver.user(722)
    await account_with(driver, user)
    reply = (await driver.send(user, "/orders"))[-1]
    assert reply.text == "📦 You have no orders yet. Order a server in the «New order» section."
    assert reply.button_texts() == ["🛒 New order", "⬅️ Main menu"]


async def test_sort_choice_sticks_for_the_session(driver: BotDriver) -> None:
    user = driver.user(723)
    account_id = await account_with(driver, user)
    cheap = await order_for(driver, account_id, VPS_1)
    dear = await order_for(driver, account_id, DS_START)
    mid = await order_for(driver, account_id, VPS_4)
    # A year of VPS 1 costs more than a month of VPS 4, but less a month than a month of VPS 1.
    yearly = await order_for(driver, account_id, VPS_1, 12)
    listing = (await driver.send(user, "/orders"))[-1]
    menu = edited(await driver.click(user, listing, "Sort"))
    assert menu.text == "↕️ Sort the orders by:"
    assert menu.button_texts() == [
        "✅ Creation date",
        "Status",
        "Monthly price",
        "Paid until",
        "⬆️ Ascending",
        "⬅️ Back to orders",
    ]
    by_cost = edited(await driver.click(user, menu, "Monthly price"))
    assert by_cost.text.startswith("📦 <b>Your orders</b>: 4\nSorted by monthly price ↓\n")
    assert by_cost.button_texts()[:4] == [
        f"#{dear.id} · DS Start",
        f"#{mid.id} · VPS 4",
        f"#{cheap.id} · VPS 1",
        f"#{yearly.id} · VPS 1",
    ]
    assert f"<b>#{yearly.id}</b>" in by_cost.text and " / 12 months · €4.41 a month" in by_cost.text
    menu = edited(await driver.click(user, by_cost, "Sort"))
    assert menu.button_texts()[:5] == [
        "Creation date",
        "Status",
        "✅ Monthly price",
        "Paid until",
        "⬆️ Ascending",
    ]
    ascending = edited(await driver.click(user, menu, "Ascending"))
    assert ascending.text.startswith("📦 <b>Your orders</b>: 4\nSorted by monthly price ↑\n")
    # Through the main menu and back: the choice is still there.
    await driver.send(user, "/menu")
    again = (await driver.send(user, "/orders"))[-1]
    assert again.text.startswith("📦 <b>Your orders</b>: 4\nSorted by monthly price ↑\n")
    assert again.button_texts()[:2] == [f"#{yearly.id} · VPS 1", f"#{cheap.id} · VPS 1"]
    forged = await driver.press(user, again, "os:name:1")
    assert answered(forged)["text"].startswith("This button is out of date.")


# ---- details and actions ----------------------------------------------------------------------
async def test_details_show_every_field_and_the_allowed_actions(driver: BotDriver) -> None:
    user = driver.user(730)
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, VPS_2, 3)
    listing = (await driver.send(user, "/orders"))[-1]
    details = edited(await driver.click(user, listing, f"#{order.id}"))
    assert details.text == (
        f"📦 <b>Order #{order.id}</b>\n"
        "Tariff: VPS 2 (☁️ VPS/VDS)\n"
        "IP address: <code>203.0.113.10</code>\n"
        "Status: ✅ Active\n"
        "Period: 3 months, €28.81\n"
        f"Created: {d(order.created_at)}\n"
        f"Paid until: {d(order.paid_until)} "
        f"({order.days_left(datetime.now(UTC))} days left)\n"
        f"Next charge: {d(order.paid_until)}, €28.81\n"
        "Auto-renew: on"
    )
    assert details.button_texts() == [
        "🔄 Renew",
        "🔀 Change tariff",
        "🔁 Turn auto-renew off",
        "❌ Cancel order",
        "⬅️ Back to orders",
    ]
    back = edited(await driver.click(user, details, "Back to orders"))
    assert back.text == listing.text


async def test_details_in_russian_and_of_a_cancelled_order(driver: BotDriver) -> None:
    user = driver.user(731, language_code="ru")
    account_id = await account_with(driver, user)
    cancelled_at = soon(-3)
    order = await order_for(
        driver,
        account_id,
        DS_START,
        status="cancelled",
        cancelled_at=cancelled_at,
        auto_renew=False,
        ip_address=None,
    )
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    assert details.text == (
        f"📦 <b>Заказ #{order.id}</b>\n"
        "Тариф: DS Start (🖥 Выделенные серверы)\n"
        "IP-адрес: —\n"
        "Статус: ✖️ Отменён\n"
        f"Период: 1 месяц, 79,00{NBSP}€\n"
        f"Создан: {d(order.created_at, 'ru')}\n"
        f"Оплачен до: {d(order.paid_until, 'ru')}\n"
        "Следующее списание: —\n"
        "Автопродление: выключено\n"
        f"Отменён {d(cancelled_at, 'ru')}"  # the date ends in «г.»: no second full stop
    )
    assert details.button_texts() == ["⬅️ К заказам"]


async def test_renew_debits_once_even_when_pressed_twice(driver: BotDriver) -> None:
    user = driver.user(740)
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, VPS_2)
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 5000, kind="topup")
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    periods = edited(await driver.click(user, details, "Renew"))
    assert periods.text == (
        f"🔄 <b>Renew order #{order.id}</b> (VPS 2)\n"
        f"Paid until: {d(order.paid_until)}\nBalance: €50.00\n\nChoose a period:"
    )
    assert periods.button_texts() == [
        "1 month — €9.90",
        "3 months — €28.81",
        "6 months — €56.43",
        "12 months — €106.92",
        "⬅️ Back",
    ]
    confirm = edited(await driver.click(user, periods, "3 months"))
    new_until = add_months(order.paid_until, 3)
    assert confirm.text == (
        f"🔄 <b>Renew order #{order.id}</b> (VPS 2) for 3 months\n"
        "Price: €28.81\n"
        f"Paid until: {d(order.paid_until)} → {d(new_until)}\n"
        "⚠️ The order's period changes from 1 month (€9.90) to 3 months (€28.81): later "
        "renewals are for 3 months.\n"
        "The price is debited from the balance (€50.00)."
    )
    assert confirm.button_texts() == ["✅ Pay €28.81", "⬅️ Back"]
    calls = await driver.click(user, confirm, "Pay")
    assert answered(calls)["text"] == f"Renewed: paid until {d(new_until)}."
    assert edited(calls).text.startswith(f"📦 <b>Order #{order.id}</b>\n")
    second = await driver.click(user, confirm, "Pay")
    assert answered(second)["text"] == (
        f"This period is already paid: order #{order.id} is paid until {d(new_until)}."
    )
    assert await balance(driver, account_id) == 5000 - 2881
    renewed = await get(driver, account_id, order.id)
    assert (renewed.paid_until, renewed.period_months, renewed.price_minor) == (new_until, 3, 2881)


async def test_renew_confirmation_says_when_the_price_changes(driver: BotDriver) -> None:
    user = driver.user(742, language_code="ru")
    account_id = await account_with(driver, user)
    # Bought when VPS 2 cost €8.90; the tariff now costs €9.90 a month.
    order = await order_for(driver, account_id, VPS_2, price_minor=890)
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 6000, kind="topup")
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    periods = edited(await driver.click(user, details, "Продлить"))
    same_period = edited(await driver.click(user, periods, "1 месяц"))
    assert f"⚠️ Цена заказа меняется: 8,90{NBSP}€ → 9,90{NBSP}€ за 1 месяц.\n" in same_period.text
    periods = edited(await driver.click(user, same_period, "Назад"))
    longer = edited(await driver.click(user, periods, "6 месяцев"))
    assert (
        f"⚠️ Период заказа меняется: 1 месяц (8,90{NBSP}€) → 6 месяцев (56,43{NBSP}€); "
        "следующие продления — на 6 месяцев.\n" in longer.text
    )
    await driver.click(user, longer, "Оплатить")
    renewed = await get(driver, account_id, order.id)
    assert (renewed.period_months, renewed.price_minor) == (6, 5643)


async def test_renew_without_money_offers_a_top_up_of_the_shortfall(driver: BotDriver) -> None:
    user = driver.user(741, language_code="ru")
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, DS_START)
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 1000, kind="topup")
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    periods = edited(await driver.click(user, details, "Продлить"))
    confirm = edited(await driver.click(user, periods, "1 месяц"))
    assert confirm.text == (
        f"🔄 <b>Продлить заказ #{order.id}</b> (DS Start) на 1 месяц\n"
        f"Стоимость: 79,00{NBSP}€\n"
        f"Оплачен до: {d(order.paid_until, 'ru')} → {d(add_months(order.paid_until, 1), 'ru')}\n"
        f"Баланс: 10,00{NBSP}€\n"
        f"Недостаточно средств: не хватает 69,00{NBSP}€. Пополните баланс и вернитесь."
    )
    assert confirm.button_texts() == [f"💳 Пополнить на 69,00{NBSP}€", "⬅️ Назад"]
    assert confirm.callback_data("Пополнить") == "tu:6900"
    # A forged "pay" for the same period still debits nothing.
    assert confirm.callback_data("Назад") == f"od:renew:{order.id}"
    await driver.press(user, confirm, f"or:pay:{order.id}:1:{to_stamp(order.paid_until)}")
    assert await balance(driver, account_id) == 1000
    assert (await get(driver, account_id, order.id)).paid_until == order.paid_until


async def test_renew_an_expired_order_makes_it_active_from_now(driver: BotDriver) -> None:
    user = driver.user(742)
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, VPS_1, paid_until=soon(-10), status="expired")
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 490, kind="topup")
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    assert "Status: ⚠️ Expired\n" in details.text
    assert details.button_texts() == [
        "🔄 Renew",
        "🔁 Turn auto-renew off",
        "❌ Cancel order",
        "⬅️ Back to orders",
    ]
    periods = edited(await driver.click(user, details, "Renew"))
    confirm = edited(await driver.click(user, periods, "1 month"))
    before = datetime.now(UTC).replace(microsecond=0)
    await driver.click(user, confirm, "Pay")
    renewed = await get(driver, account_id, order.id)
    assert renewed.status == "active"
    assert add_months(before, 1) <= renewed.paid_until <= add_months(datetime.now(UTC), 1)
    assert await balance(driver, account_id) == 0


async def test_forged_and_stale_buttons_change_nothing(driver: BotDriver) -> None:
    owner, intruder = driver.user(750), driver.user(751)
    owner_id = await account_with(driver, owner)
    intruder_id = await account_with(driver, intruder, balance=100000)
    order = await order_for(driver, owner_id, VPS_2)
    gone = await order_for(driver, intruder_id, VPS_1, status="cancelled", ip_address=None)
    screen = (await driver.send(intruder, "/menu"))[-1]
    stamp = order.paid_until
    not_yours = "Not found. It may have been removed, or it is not yours."
    for data in (
        f"od:view:{order.id}",
        f"od:renew:{order.id}",
        f"od:cancel:{order.id}",
        f"od:auto_off:{order.id}",
        f"or:pay:{order.id}:1:{to_stamp(stamp)}",
        f"oc:do:{order.id}:{VPS_4}:0",
        f"ox:now:{order.id}",
    ):
        calls = await driver.press(intruder, screen, data)
        reply = answered(calls)
        assert (reply["text"], reply["show_alert"]) == (not_yours, True), data
    gone_stamp = to_stamp(gone.paid_until)
    cases = {
        f"od:renew:{gone.id}": f"Order #{gone.id} is cancelled: it cannot be renewed or changed.",
        f"or:pay:{gone.id}:1:{gone_stamp}": (
            f"Order #{gone.id} is cancelled: it cannot be renewed or changed."
        ),
        f"od:change:{gone.id}": f"Order #{gone.id} is cancelled: it cannot be renewed or changed.",
        f"od:auto_on:{gone.id}": "Auto-renew cannot be turned on for an order that is cancelled.",
        f"od:launch:{gone.id}": "This button is out of date. Please open the menu again: /menu",
        "no:period:0:4:7:0": "This period is not offered for this tariff.",
        "no:tariff:0:999:0:0": "This tariff is not available any more.",
        "no:type:servers:0:0:0": "This product is not available.",
        "cart:explode": "This button is out of date. Please open the menu again: /menu",
    }
    for data, text in cases.items():
        reply = answered(await driver.press(intruder, screen, data))
        assert (reply["text"], reply["show_alert"]) == (text, True), data
    # Own order, but a period that is not offered and a tariff of another product.
    mine = await order_for(driver, intruder_id, VPS_2)
    mine_stamp = to_stamp(mine.paid_until)
    reply = answered(await driver.press(intruder, screen, f"or:ask:{mine.id}:7:{mine_stamp}"))
    assert reply["text"] == "This period is not offered for this tariff."
    reply = answered(await driver.press(intruder, screen, f"oc:ask:{mine.id}:{DS_PRO}:0"))
    assert reply["text"] == "This tariff is not available for this order."
    assert await balance(driver, owner_id) == 0
    assert await balance(driver, intruder_id) == 100000
    assert await get(driver, owner_id, order.id) == order
    assert await get(driver, intruder_id, mine.id) == mine


async def test_change_tariff_upgrade_then_downgrade(driver: BotDriver) -> None:
    user = driver.user(760)
    account_id = await account_with(driver, user)
    paid_until = soon(10, 5)
    order = await order_for(driver, account_id, VPS_2, paid_until=paid_until)
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 2000, kind="topup")
    period_days = (paid_until - add_months(paid_until, -1)).days
    # Both directions count the 11 days left the details show: a charge rounds up, a credit
    # rounds down.
    up = -(-(1990 - 990) * 11 // period_days)
    down = (1990 - 990) * 11 // period_days
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    assert f"Paid until: {d(paid_until)} (11 days left)\n" in details.text
    options = edited(await driver.click(user, details, "Change tariff"))
    assert options.text == (
        f"🔀 <b>Change the tariff of order #{order.id}</b>\n"
        "Now: VPS 2, €9.90 / 1 month\n"
        f"The difference for the rest of the paid period (until {d(paid_until)}) is charged "
        "or returned to the balance at once.\n\nChoose the new tariff:"
    )
    assert options.button_texts() == [
        "VPS 1 — €4.90 / 1 month",
        "VPS 4 — €19.90 / 1 month",
        "⬅️ Back",
    ]
    confirm = edited(await driver.click(user, options, "VPS 4"))
    money_up = f"€{up // 100}.{up % 100:02d}"
    assert confirm.text == (
        f"🔀 <b>Order #{order.id}: VPS 2 → VPS 4</b>\n"
        "New price: €19.90 / 1 month, from the next renewal.\n"
        f"For the 11 days left of the paid period you pay {money_up} now.\n"
        f"Paid until stays {d(paid_until)}."
    )
    assert confirm.button_texts() == ["✅ Confirm", "⬅️ Back"]
    calls = await driver.click(user, confirm, "Confirm")
    assert answered(calls)["text"] == "The tariff is now VPS 4."
    assert "Tariff: VPS 4 (☁️ VPS/VDS)\n" in edited(calls).text
    again = await driver.click(user, confirm, "Confirm")
    assert answered(again)["text"] == f"Order #{order.id} already has this tariff."
    assert await balance(driver, account_id) == 2000 - up

    # Downgrade back, in Russian: the same 11 days, never more than the upgrade cost.
    await driver.press(user, _menu(driver, user), "lang:ru")
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    options = edited(await driver.click(user, details, "Сменить тариф"))
    confirm = edited(await driver.click(user, options, "VPS 2"))
    money_down = f"{down // 100},{down % 100:02d}{NBSP}€"
    assert confirm.text == (
        f"🔀 <b>Заказ #{order.id}: VPS 4 → VPS 2</b>\n"
        f"Новая цена: 9,90{NBSP}€ / 1 месяц, со следующего продления.\n"
        f"За оставшиеся 11 дней оплаченного периода на баланс вернётся {money_down}.\n"
        f"Дата «оплачен до» не меняется: {d(paid_until, 'ru')}"
    )
    await driver.click(user, confirm, "Подтвердить")
    changed = await get(driver, account_id, order.id)
    assert (changed.tariff_name, changed.price_minor, changed.paid_until) == (
        "VPS 2",
        990,
        paid_until,
    )
    assert await balance(driver, account_id) == 2000 - up + down


async def test_change_confirmation_with_an_old_amount_asks_again(driver: BotDriver) -> None:
    user = driver.user(761)
    account_id = await account_with(driver, user, balance=0)
    order = await order_for(driver, account_id, VPS_2, paid_until=soon(10, 5))
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 5000, kind="topup")
    screen = (await driver.send(user, "/menu"))[-1]
    calls = await driver.press(user, screen, f"oc:do:{order.id}:{VPS_4}:1")
    assert answered(calls)["text"] == (
        "The amount has changed since you saw it: please confirm again."
    )
    assert edited(calls).button_texts() == ["✅ Confirm", "⬅️ Back"]
    assert (await get(driver, account_id, order.id)).tariff_name == "VPS 2"
    assert await balance(driver, account_id) == 5000


async def test_cancel_at_period_end_keep_and_cancel_now(driver: BotDriver) -> None:
    user = driver.user(770)
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, VPS_1)
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    ask = edited(await driver.click(user, details, "Cancel order"))
    assert ask.text == (
        f"❌ <b>Cancel order #{order.id}</b> (VPS 1)?\n\n"
        f"📅 At the end of the period: the server works until {d(order.paid_until)} and is "
        "not renewed.\n"
        "⛔ Now: the server is stopped at once; the unused days are not refunded."
    )
    assert ask.button_texts() == [
        "📅 At the end of the period",
        "⛔ Cancel now, no refund",
        "⬅️ Back",
    ]
    calls = await driver.click(user, ask, "At the end")
    assert answered(calls)["text"] == f"The order will be cancelled on {d(order.paid_until)}."
    scheduled = edited(calls)
    assert scheduled.text.endswith(
        "Next charge: —\nAuto-renew: off\n"
        f"⚠️ The order will be cancelled on {d(order.paid_until)}, at the end of the paid period."
    )
    assert scheduled.button_texts() == [
        "🔄 Renew",
        "🔀 Change tariff",
        "↩️ Keep the order",
        "❌ Cancel order",
        "⬅️ Back to orders",
    ]
    kept = await driver.click(user, scheduled, "Keep the order")
    # Auto-renew was on before the cancellation: keeping the order turns it back on.
    assert answered(kept)["text"] == "The order will not be cancelled. Auto-renew is on again."
    assert edited(kept).text.endswith(f"Next charge: {d(order.paid_until)}, €4.90\nAuto-renew: on")
    kept_order = await get(driver, account_id, order.id)
    assert (kept_order.cancel_at_period_end, kept_order.auto_renew) == (False, True)
    assert kept_order.next_charge() == order.paid_until
    ask = edited(await driver.click(user, edited(kept), "Cancel order"))
    calls = await driver.click(user, ask, "Cancel now")
    assert answered(calls)["text"] == f"Order #{order.id} is cancelled."
    assert edited(calls).button_texts() == ["⬅️ Back to orders"]
    # The address went back to the pool, but the details still say which one it was.
    assert "\nIP address: <code>203.0.113.10</code> (released)\n" in edited(calls).text
    cancelled = await get(driver, account_id, order.id)
    assert (cancelled.status, cancelled.ip_address) == ("cancelled", None)
    again = await driver.click(user, ask, "Cancel now")
    assert answered(again)["text"] == f"Order #{order.id} is already cancelled."
    assert await balance(driver, account_id) == 0  # no refund


async def test_keep_the_order_leaves_auto_renew_off_when_it_was_off(driver: BotDriver) -> None:
    user = driver.user(772)
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, VPS_1)
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    off = edited(await driver.click(user, details, "Turn auto-renew off"))
    ask = edited(await driver.click(user, off, "Cancel order"))
    scheduled = edited(await driver.click(user, ask, "At the end"))
    kept = await driver.click(user, scheduled, "Keep the order")
    assert answered(kept)["text"] == "The order will not be cancelled. Auto-renew stays off."
    kept_order = await get(driver, account_id, order.id)
    assert (kept_order.cancel_at_period_end, kept_order.auto_renew) == (False, False)


async def test_auto_renew_toggle_per_order(driver: BotDriver) -> None:
    user = driver.user(771, language_code="ru")
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, VPS_1)
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    assert "Автопродление: включено" in details.text
    calls = await driver.click(user, details, "Выключить автопродление")
    assert answered(calls)["text"] == "Автопродление выключено."
    assert "Следующее списание: —\nАвтопродление: выключено" in edited(calls).text
    assert "🔁 Включить автопродление" in edited(calls).button_texts()
    assert (await get(driver, account_id, order.id)).auto_renew is False
    calls = await driver.click(user, edited(calls), "Включить автопродление")
    assert answered(calls)["text"] == "Автопродление включено."
    assert (await get(driver, account_id, order.id)).auto_renew is True


async def test_prices_in_the_account_currency_with_the_base_amount(driver: BotDriver) -> None:
    user = driver.user(780)
    account_id = await account_with(driver, user, balance=5000)
    order = await order_for(driver, account_id, VPS_2)
    async with driver.gateway.transaction() as billing:
        await billing.set_currency(account_id, "USD")  # the test rates: USD=1.08 per EUR
    listing = (await driver.send(user, "/orders"))[-1]
    assert listing.text.endswith("\n$10.69 (€9.90) / 1 month")
    details = edited(await driver.click(user, listing, f"#{order.id}"))
    assert "Period: 1 month, $10.69 (€9.90)\n" in details.text
    periods = edited(await driver.click(user, details, "Renew"))
    assert "\nBalance: $54.00 (€50.00)\n" in periods.text
    assert periods.button_texts()[0] == "1 month — $10.69 (€9.90)"
    confirm = edited(await driver.click(user, periods, "1 month"))
    assert confirm.button_texts() == ["✅ Pay $10.69 (€9.90)", "⬅️ Back"]
    await driver.click(user, confirm, "Pay")
    assert await balance(driver, account_id) == 5000 - 990  # the ledger moves euros


async def test_fifty_concurrent_presses_of_confirm_renew_debit_once(driver: BotDriver) -> None:
    """Real concurrency through the dispatcher: each press runs in its own transaction."""
    user = driver.user(790)
    account_id = await account_with(driver, user)
    order = await order_for(driver, account_id, VPS_2)
    async with driver.gateway.transaction() as billing:
        await billing.credit(account_id, 10000, kind="topup")
    details = edited(await driver.press(user, _menu(driver, user), f"od:view:{order.id}"))
    periods = edited(await driver.click(user, details, "Renew"))
    confirm = edited(await driver.click(user, periods, "1 month"))
    data = confirm.callback_data("Pay")
    await asyncio.gather(*(driver.press(user, confirm, data) for _ in range(50)))
    assert await balance(driver, account_id) == 10000 - 990
    renewed = await get(driver, account_id, order.id)
    assert renewed.paid_until == add_months(order.paid_until, 1)
