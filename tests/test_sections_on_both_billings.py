"""The customer's sections through the production dispatcher, the same scenarios and the same
assertions on both backends: the embedded billing and the bot in front of WHMCS (the stand-in,
tests/harness/whmcs.py). `cabinet` yields the driver and a seeding adapter with the same
methods for both; where the two legitimately differ, the expectation is parametrized with a
comment why."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from typing import Protocol

import pytest
from babel.dates import format_date
from sqlalchemy import select, update

from keyboards.orders import stamp as to_stamp
from services.billing import per_call
from services.contracts.common import Account
from services.embedded import models as m
from services.embedded.orders import add_months
from services.outbox import OutboxSender
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, User
from tests.harness.whmcs import Client, InvoiceLine, WhmcsStandIn
from tests.test_tickets_handlers import STAFF, open_ticket, staff_forum
from tests.whmcs_fixtures import linked_account

DEMO_IP = "203.0.113.10"
PROFILE = {
    "last_name": "Ivanov",
    "first_name": "Ivan",
    "city": "Moscow",
    "address": "Tverskaya 1",
}


class Seeder(Protocol):
    kind: str

    async def customer(self, telegram_id: int, balance_minor: int = 0) -> Account: ...
    async def order(
        self, account: Account, name: str, price_minor: int, paid_until: date
    ) -> int: ...
    async def invoice(self, account: Account, amount_minor: int) -> int: ...
    async def balance(self, account: Account) -> int: ...
    async def paid_until(self, account: Account, order_id: int) -> date: ...
    async def invoice_status(self, account: Account, invoice_id: int) -> str: ...
    async def tickets(self, account: Account) -> list[tuple[int, str]]: ...


class EmbeddedSeeder:
    kind = "embedded"

    def __init__(self, driver: BotDriver) -> None:
        self.driver = driver

    async def customer(self, telegram_id: int, balance_minor: int = 0) -> Account:
        async with self.driver.gateway.transaction() as billing:
            account, _ = await billing.get_or_create_account(
                telegram_id, telegram_id, name="Customer"
            )
            await billing.session.execute(
                update(m.Account)
                .where(m.Account.id == account.id)
                .values(**PROFILE, email=f"c{telegram_id}@example.com")
            )
            if balance_minor:
                await billing.credit(account.id, balance_minor, kind="adjustment", actor="test")
            return await billing.get_account(account.id)

    async def order(self, account: Account, name: str, price_minor: int, paid_until: date) -> int:
        """A demo-catalogue tariff `name` (its monthly price must be `price_minor`), placed and
        paid through the billing, then moved to `paid_until`; the balance is left as it was."""
        async with self.driver.gateway.transaction() as billing:
            [tariff] = [t for t in await billing.list_tariffs() if t.name == name]
            [monthly] = [p for p in tariff.prices if p.months == 1]
            assert monthly.price_minor == price_minor
            await billing.credit(account.id, price_minor, kind="adjustment", actor="test")
            order = await billing.place_order(account.id, tariff.id, 1)
            until = datetime.combine(paid_until, time(), tzinfo=UTC)  # as WHMCS's due date
            await billing.session.execute(
                update(m.Order).where(m.Order.id == order.id).values(paid_until=until)
            )
            return order.id

    async def invoice(self, account: Account, amount_minor: int) -> int:
        async with self.driver.gateway.transaction() as billing:
            invoice = await billing.create_invoice(
                account.id, amount_minor, account.base_currency, purpose="order"
            )
            return invoice.id

    async def balance(self, account: Account) -> int:
        async with self.driver.gateway.transaction() as billing:
            balance = (await billing.get_account(account.id)).balance_minor
            assert balance == await billing.ledger_sum(account.id)
            return balance

    async def paid_until(self, account: Account, order_id: int) -> date:
        async with self.driver.gateway.transaction() as billing:
            return (await billing.get_order(account.id, order_id)).paid_until.date()

    async def invoice_status(self, account: Account, invoice_id: int) -> str:
        async with self.driver.gateway.transaction() as billing:
            return (await billing.get_invoice(account.id, invoice_id)).status

    async def tickets(self, account: Account) -> list[tuple[int, str]]:
        async with self.driver.gateway.transaction() as billing:
            rows = await billing.session.scalars(
                select(m.Ticket).where(m.Ticket.account_id == account.id).order_by(m.Ticket.id)
            )
            return [(t.id, t.subject) for t in rows]


class WhmcsSeeder:
    kind = "whmcs"

    def __init__(self, driver: BotDriver, whmcs: WhmcsStandIn) -> None:
        self.driver, self.whmcs = driver, whmcs
        self.clients: dict[int, Client] = {}  # account id -> its WHMCS client

    async def customer(self, telegram_id: int, balance_minor: int = 0) -> Account:
        client = self.whmcs.add_client(
            PROFILE["first_name"], PROFILE["last_name"], f"c{telegram_id}@example.com",
            credit=Decimal(balance_minor) / 100, city=PROFILE["city"], address1=PROFILE["address"],
        )  # fmt: skip
        account = await linked_account(self.driver.gateway, telegram_id, client)
        self.clients[account.id] = client
        return account

    async def order(self, account: Account, name: str, price_minor: int, paid_until: date) -> int:
        client = self.clients[account.id]
        currency = account.base_currency
        product = self.whmcs.add_product(name, str(Decimal(price_minor) / 100), currency)
        service = self.whmcs.add_service(
            client, product, nextduedate=paid_until, dedicatedip=DEMO_IP
        )  # the address the embedded demo catalogue gives its first server
        return service.id

    async def invoice(self, account: Account, amount_minor: int) -> int:
        client = self.clients[account.id]
        line = InvoiceLine("Hosting", Decimal(amount_minor) / 100)
        return self.whmcs.add_invoice(client, line).id

    async def balance(self, account: Account) -> int:
        """The credit in WHMCS itself, the source of truth (not the bot's cache)."""
        return int(self.clients[account.id].credit * 100)

    async def paid_until(self, account: Account, order_id: int) -> date:
        due = self.whmcs.services[order_id].nextduedate
        assert due is not None
        return due

    async def invoice_status(self, account: Account, invoice_id: int) -> str:
        return self.whmcs.invoices[invoice_id].status.lower()

    async def tickets(self, account: Account) -> list[tuple[int, str]]:
        client = self.clients[account.id]
        return [(t.id, t.subject) for t in self.whmcs.tickets.values() if t.userid == client.id]


@dataclass
class Cabinet:
    kind: str
    driver: BotDriver
    seed: Seeder
    whmcs: WhmcsStandIn | None = None


@pytest.fixture(params=["embedded", "whmcs"])
def cabinet(request: pytest.FixtureRequest) -> Iterator[Cabinet]:
    if request.param == "embedded":
        driver: BotDriver = request.getfixturevalue("driver")
        yield Cabinet("embedded", driver, EmbeddedSeeder(driver))
    else:
        whmcs: WhmcsStandIn = request.getfixturevalue("whmcs")
        whmcs.today = date.today()  # the adapter compares due dates with the real clock
        driver = request.getfixturevalue("whmcs_driver")
        yield Cabinet("whmcs", driver, WhmcsSeeder(driver, whmcs), whmcs)


# ---- helpers ------------------------------------------------------------------------------------
def screen(calls: list[Call]) -> Call:
    """The message the bot rendered (a sent or an edited one)."""
    found = [c for c in calls if c.method in ("sendMessage", "editMessageText") and c.error is None]
    assert found, [(c.method, c.params) for c in calls]
    return found[-1]


def alert(calls: list[Call]) -> str | None:
    [answer] = [c for c in calls if c.method == "answerCallbackQuery" and c.error is None]
    return answer.params.get("text")


def d(value: date) -> str:
    return format_date(value, format="medium", locale="en")


def sends(calls: list[Call], chat_id: int) -> list[Call]:
    return [
        c
        for c in calls
        if c.error is None
        and c.method in ("sendMessage", "sendPhoto", "sendDocument")
        and c.params.get("chat_id") == chat_id
    ]


# Money on screen. The embedded billing keeps accounts in the bot's base currency (EUR). The
# stand-in's clients are in its default currency, USD (currency 1), as a hoster's WHMCS often
# is: the bot shows a WHMCS client's money in the display currency (EUR) with the client's own
# amount in brackets, converted at the test rates (1 EUR = 1.08 USD). Same minor amounts are
# seeded on both; only the rendering differs.
MONEY = {
    "embedded": {
        1250: "€12.50", 5000: "€50.00", 4510: "€45.10", 490: "€4.90", 300: "€3.00",
        190: "€1.90", 200: "€2.00", 100: "€1.00",
    },
    "whmcs": {
        1250: "€11.57 ($12.50)", 5000: "€46.30 ($50.00)", 4510: "€41.76 ($45.10)",
        490: "€4.54 ($4.90)", 300: "€2.78 ($3.00)", 190: "€1.76 ($1.90)", 200: "€1.85 ($2.00)",
        100: "€0.93 ($1.00)",
    },
}  # fmt: skip
# The product type of the tariff: the embedded demo catalogue's VPS/VDS; a WHMCS product in
# the stand-in's product group "Hosting" (type hostingaccount), which the bot shows as Hosting.
GROUP = {"embedded": "☁️ VPS/VDS", "whmcs": "🌐 Hosting"}
# Renewal periods: the demo catalogue prices 1/3/6/12 months; the WHMCS product is seeded
# with a monthly price only (the other cycles disabled, -1.00), so WHMCS offers one month.
PERIODS = {
    "embedded": ["1 month — €4.90", "3 months — €14.26", "6 months — €27.93", "12 months — €52.92"],
    "whmcs": ["1 month — €4.54 ($4.90)"],
}


def money(cabinet: Cabinet, minor: int) -> str:
    return MONEY[cabinet.kind][minor]


def created(cabinet: Cabinet) -> date:
    """The embedded order is placed now; every stand-in service has regdate 2025-01-01."""
    return date.today() if cabinet.kind == "embedded" else date(2025, 1, 1)


def menu_text(cabinet: Cabinet, login: str, balance_minor: int) -> str:
    return (
        f"💼 <b>Personal cabinet</b>\nLogin: <code>{login}</code>\n"
        f"Balance: <b>{money(cabinet, balance_minor)}</b>\n\nChoose a section:"
    )


async def open_order(cabinet: Cabinet, user: User, order_id: int) -> Call:
    listing = screen(await cabinet.driver.send(user, "/orders"))
    return screen(await cabinet.driver.click(user, listing, f"#{order_id}"))


# ---- menu and balance -------------------------------------------------------------------------
async def test_the_main_menu_shows_the_balance(cabinet: Cabinet) -> None:
    account = await cabinet.seed.customer(501, 1250)
    user = cabinet.driver.user(501)
    menu = screen(await cabinet.driver.send(user, "/menu"))
    assert menu.text == menu_text(cabinet, account.login, 1250)
    assert account.login == "tg501"
    assert menu.button_texts() == [
        "📦 Orders",
        "🛒 New order",
        "🧾 Invoices",
        "💰 Balance",
        "💬 Tickets",
        "⚙️ Settings",
        "❓ Help",
        "🌐 Language",
    ]


# The balance in every currency. The embedded account's base is EUR, so each other currency
# carries its EUR rate. The WHMCS client's base is USD: the main line is in the display
# currency (EUR), the USD line is the client's own amount (no rate: it is the base) and the
# RUB amount is 45.10 USD at 100 RUB per EUR / 1.08 USD per EUR = 92.59259259 RUB per USD.
BALANCE = {
    "embedded": (
        "💰 <b>Balance: €45.10</b>\n\n"
        "In other currencies:\n"
        "≈ $48.71 (1 EUR = 1.08 USD)\n"
        "≈ ₽4,510.00 (1 EUR = 100 RUB)\n\n"
        "Exchange rates from the bot configuration."
    ),
    "whmcs": (
        "💰 <b>Balance: €41.76</b>\n\n"
        "In other currencies:\n"
        "≈ $45.10\n"
        "≈ ₽4,175.93 (1 USD = 92.59259259 RUB)\n\n"
        "Exchange rates from the bot configuration."
    ),
}


async def test_balance_shows_the_balance(cabinet: Cabinet) -> None:
    await cabinet.seed.customer(501, 4510)
    user = cabinet.driver.user(501)
    shown = screen(await cabinet.driver.send(user, "/balance"))
    assert shown.text == BALANCE[cabinet.kind]
    assert shown.button_texts() == ["➕ Top up", "🧾 Invoices", "📜 Payment history", "⬅️ Main menu"]
    menu = screen(await cabinet.driver.send(user, "/menu"))
    via_button = screen(await cabinet.driver.click(user, menu, "Balance"))
    assert via_button.text == BALANCE[cabinet.kind]


# ---- orders -----------------------------------------------------------------------------------
async def test_orders_list_and_details_and_a_foreign_order_id(cabinet: Cabinet) -> None:
    driver, seed = cabinet.driver, cabinet.seed
    paid_until = date.today() + timedelta(days=20)
    account = await seed.customer(501, 5000)
    other = await seed.customer(502, 0)
    order_id = await seed.order(account, "VPS 1", 490, paid_until)
    theirs = await seed.order(other, "VPS 1", 490, paid_until)
    user = driver.user(501)
    order = await per_call(driver.gateway).get_order(account.id, order_id)
    assert order.paid_until.date() == paid_until
    left = order.days_left(datetime.now(UTC))
    assert left == 20  # until midnight (UTC) of paid_until, a started day counting as one

    listing = screen(await driver.send(user, "/orders"))
    assert listing.text == (
        "📦 <b>Your orders</b>: 1\nSorted by creation date ↓\n\n"
        f"<b>#{order_id}</b> · VPS 1 · <code>{DEMO_IP}</code>\n"
        f"✅ Active · paid until {d(paid_until)} · {left} days left\n"
        f"{money(cabinet, 490)} / 1 month"
    )
    assert listing.button_texts() == [
        f"#{order_id} · VPS 1",
        "🔍 Search",
        "↕️ Sort",
        "🛒 New order",
        "⬅️ Main menu",
    ]
    details = screen(await driver.click(user, listing, f"#{order_id}"))
    assert details.text == (
        f"📦 <b>Order #{order_id}</b>\n"
        f"Tariff: VPS 1 ({GROUP[cabinet.kind]})\n"
        f"IP address: <code>{DEMO_IP}</code>\n"
        "Status: ✅ Active\n"
        f"Period: 1 month, {money(cabinet, 490)}\n"
        f"Created: {d(created(cabinet))}\n"
        f"Paid until: {d(paid_until)} ({left} days left)\n"
        f"Next charge: {d(paid_until)}, {money(cabinet, 490)}\n"
        "Auto-renew: on"
    )
    assert details.button_texts() == [
        "🔄 Renew",
        "🔀 Change tariff",
        "🔁 Turn auto-renew off",
        "❌ Cancel order",
        "⬅️ Back to orders",
    ]

    # Someone else's order id in forged buttons: not found, and nothing changes.
    not_yours = "Not found. It may have been removed, or it is not yours."
    stamp = to_stamp(datetime.combine(paid_until, time(), tzinfo=UTC))
    for data in (f"od:view:{theirs}", f"od:renew:{theirs}", f"or:pay:{theirs}:1:{stamp}"):
        calls = await driver.press(user, details, data)
        assert alert(calls) == not_yours, data
        assert [c.method for c in calls if c.error is None] == ["answerCallbackQuery"], data
    assert await seed.balance(account) == 5000
    assert await seed.balance(other) == 0
    assert await seed.paid_until(other, theirs) == paid_until
    assert await seed.paid_until(account, order_id) == paid_until


async def test_renew_from_the_balance_once(cabinet: Cabinet) -> None:
    driver, seed = cabinet.driver, cabinet.seed
    paid_until = date.today() + timedelta(days=20)
    new_until = add_months(paid_until, 1)
    account = await seed.customer(501, 5000)
    order_id = await seed.order(account, "VPS 1", 490, paid_until)
    user = driver.user(501)
    details = await open_order(cabinet, user, order_id)
    periods = screen(await driver.click(user, details, "Renew"))
    assert periods.text == (
        f"🔄 <b>Renew order #{order_id}</b> (VPS 1)\n"
        f"Paid until: {d(paid_until)}\nBalance: {money(cabinet, 5000)}\n\nChoose a period:"
    )
    assert periods.button_texts() == [*PERIODS[cabinet.kind], "⬅️ Back"]
    confirm = screen(await driver.click(user, periods, "1 month"))
    assert confirm.text == (
        f"🔄 <b>Renew order #{order_id}</b> (VPS 1) for 1 month\n"
        f"Price: {money(cabinet, 490)}\n"
        f"Paid until: {d(paid_until)} → {d(new_until)}\n"
        f"The price is debited from the balance ({money(cabinet, 5000)})."
    )
    assert confirm.button_texts() == [f"✅ Pay {money(cabinet, 490)}", "⬅️ Back"]
    calls = await driver.click(user, confirm, "Pay")
    assert alert(calls) == f"Renewed: paid until {d(new_until)}."
    assert screen(calls).text.startswith(f"📦 <b>Order #{order_id}</b>\n")
    assert f"Paid until: {d(new_until)} (" in screen(calls).text
    assert await seed.balance(account) == 5000 - 490
    assert await seed.paid_until(account, order_id) == new_until
    # A second press of the same Pay button (a double tap) pays nothing more.
    again = await driver.click(user, confirm, "Pay")
    assert alert(again) == (
        f"This period is already paid: order #{order_id} is paid until {d(new_until)}."
    )
    assert await seed.balance(account) == 5000 - 490
    assert await seed.paid_until(account, order_id) == new_until
    menu = screen(await driver.send(user, "/menu"))
    assert menu.text == menu_text(cabinet, account.login, 4510)


async def test_renew_without_enough_money_offers_the_shortfall(cabinet: Cabinet) -> None:
    driver, seed = cabinet.driver, cabinet.seed
    paid_until = date.today() + timedelta(days=20)
    account = await seed.customer(501, 300)
    order_id = await seed.order(account, "VPS 1", 490, paid_until)
    user = driver.user(501)
    details = await open_order(cabinet, user, order_id)
    periods = screen(await driver.click(user, details, "Renew"))
    confirm = screen(await driver.click(user, periods, "1 month"))
    assert confirm.text == (
        f"🔄 <b>Renew order #{order_id}</b> (VPS 1) for 1 month\n"
        f"Price: {money(cabinet, 490)}\n"
        f"Paid until: {d(paid_until)} → {d(add_months(paid_until, 1))}\n"
        f"Balance: {money(cabinet, 300)}\n"
        f"Not enough money: {money(cabinet, 190)} is missing. "
        "Top up the balance, then come back."
    )
    assert confirm.button_texts() == [f"💳 Top up {money(cabinet, 190)}", "⬅️ Back"]
    # The top-up offer is the shortfall in the account's base currency (EUR / the client's USD).
    assert confirm.callback_data("Top up") == "tu:190"
    # A forged "pay" for the period charges nothing either.
    stamp = to_stamp(datetime.combine(paid_until, time(), tzinfo=UTC))
    await driver.press(user, confirm, f"or:pay:{order_id}:1:{stamp}")
    assert await seed.balance(account) == 300
    assert await seed.paid_until(account, order_id) == paid_until


# ---- invoices ---------------------------------------------------------------------------------
def invoice_number(cabinet: Cabinet, invoice_id: int) -> str:
    """The embedded billing numbers its invoices YEAR-NNNNNN; WHMCS shows its invoice id."""
    if cabinet.kind == "embedded":
        return f"{date.today().year}-{invoice_id:06d}"
    return str(invoice_id)


# An invoice's amount is in its own currency: EUR on the embedded billing, the WHMCS client's
# USD in WHMCS (the stand-in's invoices carry no conversion).
INVOICE_AMOUNT = {"embedded": "€2.00", "whmcs": "$2.00"}
# How it was paid: the embedded billing records the method; a WHMCS invoice as the bot reads
# it (services/whmcs/invoices.py whmcs_dto) carries no method, so the line only has the date.
PAID_ON = {"embedded": "Paid on {} from the balance", "whmcs": "Paid on {}"}
# The Stars price of 2.00 at 50 Stars per EUR: 100 for €2.00, 93 for $2.00 (2.00 / 1.08 EUR).
INVOICE_STARS = {"embedded": "100", "whmcs": "93"}


async def test_an_unpaid_invoice_is_listed_and_paid_from_the_balance_once(
    cabinet: Cabinet,
) -> None:
    driver, seed = cabinet.driver, cabinet.seed
    account = await seed.customer(501, 300)
    invoice_id = await seed.invoice(account, 200)
    number, amount = invoice_number(cabinet, invoice_id), INVOICE_AMOUNT[cabinet.kind]
    today = d(date.today())
    user = driver.user(501)
    listing = screen(await driver.send(user, "/invoices"))
    assert listing.text == (
        f"🧾 <b>Invoices</b> — page 1 of 1\n\n⏳ {number} · {today} · {amount} · unpaid"
    )
    assert listing.button_texts() == [
        f"⏳ {number} · {amount}",
        "📜 Payment history",
        "➕ Top up",
        "⬅️ Main menu",
    ]
    opened = screen(await driver.click(user, listing, number))
    assert opened.text == (
        f"🧾 <b>Invoice No. {number}</b>\nDate: {today}\nPurpose: order payment\n"
        f"Amount: <b>{amount}</b>\nStatus: <b>unpaid</b>\n\nChoose how to pay:"
    )
    assert opened.button_texts() == [
        f"⭐ Go to payment: {INVOICE_STARS[cabinet.kind]} Telegram Stars",
        "💰 Pay from the balance",
        "✖️ Cancel the invoice",
        "⬅️ Invoices",
    ]
    calls = await driver.click(user, opened, "Pay from the balance")
    assert alert(calls) == "Paid from the balance."
    paid = screen(calls)
    assert await seed.balance(account) == 100
    assert await seed.invoice_status(account, invoice_id) == "paid"
    # The same button pressed again does not pay twice.
    again = await driver.click(user, opened, "Pay from the balance")
    assert alert(again) == "This invoice is paid: there is nothing to pay."
    assert await seed.balance(account) == 100
    assert await seed.invoice_status(account, invoice_id) == "paid"
    menu = screen(await driver.send(user, "/menu"))
    assert menu.text == menu_text(cabinet, account.login, 100)
    assert paid.text == (
        f"🧾 <b>Invoice No. {number}</b>\nDate: {today}\nPurpose: order payment\n"
        f"Amount: <b>{amount}</b>\nStatus: <b>paid</b>\n{PAID_ON[cabinet.kind].format(today)}"
    )
    assert paid.button_texts() == ["⬅️ Invoices"]


# ---- tickets ----------------------------------------------------------------------------------
ANNA = User(id=7001, first_name="Anna", language_code="en")  # WHMCS admin "anna" (fixtures)
UNPAID_AND_LAST = {
    "embedded": "Unpaid invoices: 2 (€7.00) · Last payment: €2.00, {}",
    "whmcs": "Unpaid invoices: 2 ($7.00) · Last payment: $2.00, {}",
}


async def test_the_ticket_header_shows_unpaid_invoices_and_the_last_payment(
    cabinet: Cabinet,
) -> None:
    driver, seed = cabinet.driver, cabinet.seed
    staff_forum(driver)
    account = await seed.customer(501, 300)
    paid_id = await seed.invoice(account, 200)
    for amount in (500, 200):
        await seed.invoice(account, amount)
    async with driver.gateway.transaction() as billing:
        await billing.pay_invoice_from_balance(account.id, paid_id)
    calls = await open_ticket(driver, driver.user(501), subject="Invoices", text="Which one?")
    [header] = sends(calls, STAFF)
    line = UNPAID_AND_LAST[cabinet.kind].format(d(date.today()))
    assert f"Active orders: 0\n{line}\n\nWhich one?" in header.text


async def test_a_new_ticket_reaches_the_staff_and_the_answer_reaches_the_customer_once(
    cabinet: Cabinet,
) -> None:
    driver, seed = cabinet.driver, cabinet.seed
    group = staff_forum(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    account = await seed.customer(501, 0)
    customer = driver.user(501)
    calls = await open_ticket(driver, customer, subject="Server down", text="It <is> down")
    [(ticket_id, subject)] = await seed.tickets(account)
    assert subject == "Server down"
    [topic] = [c for c in calls if c.method == "createForumTopic"]
    assert (topic["chat_id"], topic["name"]) == (STAFF, f"🔴 #{ticket_id} Server down")
    [header] = sends(calls, STAFF)
    assert header.text.startswith(f"🎫 <b>Ticket #{ticket_id}</b> · Server down\n")
    assert "\n\nIt &lt;is&gt; down" in header.text
    done = screen(calls)
    assert (done["chat_id"], done.text) == (
        501,
        f"✅ Ticket #{ticket_id} is created. Support will answer here, in this chat.",
    )

    thread_id = header["message_thread_id"]
    assert thread_id == topic.result["message_thread_id"]
    calls = await driver.send(ANNA, "Rebooted <it>", chat=group, thread_id=thread_id)
    pushed = sends(calls, 501)
    assert [(c.text, c.button_texts()) for c in pushed] == [
        (
            f"💬 <b>Support</b> answered in ticket #{ticket_id} «Server down»:\n\n"
            "Rebooted &lt;it&gt;",
            ["✍️ Reply", "📄 Open ticket"],
        )
    ]
    # Nothing is queued to send it again.
    start = len(driver.fake.calls)
    await OutboxSender(driver.gateway, driver.bot, owner="test").drain(budget=5)
    assert sends(driver.fake.calls[start:], 501) == []
    # In the whole conversation the customer got the answer exactly once.
    answers = [c.text for c in driver.fake.sent(501) if c.text and "Rebooted" in c.text]
    assert answers == [pushed[0].text]
