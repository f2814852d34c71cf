"""The real `python -m bot` process with BILLING=whmcs against the WHMCS stand-in: a customer
links their Telegram by an e-mail code, sees and renews an order, tops up with Stars (one
AddTransaction however often Telegram delivers the payment), pays an invoice from the credit,
and gets support answers both from the staff group and from a reply written in WHMCS."""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator
from datetime import date
from decimal import Decimal
from pathlib import Path

import pytest

from tests.e2e.conftest import LiveBot, _env, _start, _stop
from tests.harness.server import TelegramServer
from tests.harness.telegram import Call, Chat, User
from tests.harness.whmcs import IDENTIFIER, SECRET, Client, InvoiceLine, WhmcsStandIn
from tests.whmcs_fixtures import DEPARTMENTS

STAFF = -100500
ANNA = User(id=7001, first_name="Anna")  # WHMCS admin "anna" (WHMCS_ADMIN_USERNAMES)
CUSTOMER_ID = 741


def whmcs_env(tmp_path: Path, server: TelegramServer, whmcs: WhmcsStandIn) -> dict[str, str]:
    return _env(
        tmp_path,
        server,
        BILLING="whmcs",
        WHMCS_URL=whmcs.url,
        WHMCS_IDENTIFIER=IDENTIFIER,
        WHMCS_SECRET=SECRET,
        WHMCS_DEPARTMENTS=DEPARTMENTS,
        WHMCS_ADMIN_USERNAMES=f"{ANNA.id}=anna",
        WHMCS_TIMEOUT_SECONDS="3",
        WHMCS_SYNC_INTERVAL_SECONDS="1",
        DEFAULT_CURRENCY="USD",
        CURRENCIES="USD,EUR",
        STATIC_RATES="EUR=0.9,RUB=90",
        STARS_PER_EUR="50",
        SEED_DEMO_CATALOGUE="false",
    )


@pytest.fixture
async def standin() -> AsyncIterator[WhmcsStandIn]:
    async with WhmcsStandIn() as whmcs:
        whmcs.today = date.today()
        yield whmcs


@pytest.fixture
async def live(
    tmp_path: Path, telegram_server: TelegramServer, standin: WhmcsStandIn
) -> AsyncIterator[LiveBot]:
    fake = telegram_server.fake
    env = whmcs_env(tmp_path, telegram_server, standin)
    process, log = await _start(tmp_path, env, fake, "getUpdates")
    yield LiveBot(fake, process, log)
    await _stop(process, log)


def to(chat_id: int, method: str = "sendMessage", contains: str = "") -> object:
    return lambda c: (
        c.method == method and c.get("chat_id") == chat_id and contains in (c.get("text") or "")
    )


async def link(bot: LiveBot, whmcs: WhmcsStandIn, user: User, email: str) -> Call:
    start = await bot.send(user, "/start")
    explanation = await bot.reply(to(user.id, contains="personal cabinet"), start)
    start = await bot.press(user, explanation, "Link my account")
    await bot.reply(lambda c: "e-mail address" in (c.get("text") or ""), start)
    start = await bot.send(user, email)
    await bot.reply(to(user.id, contains="one-time code is on its way"), start)
    match = re.search(r"<b>(\d{6})</b>", whmcs.emails[-1].message)
    assert match is not None, "the code went out by SendEmail"
    start = await bot.send(user, match.group(1))
    await bot.reply(to(user.id, contains="linked"), start)
    return await bot.reply(to(user.id, contains="Personal cabinet"), start)


def seed(whmcs: WhmcsStandIn) -> Client:
    alice = whmcs.add_client(
        "Alice", "Smith", "alice@example.com", credit=Decimal("20.00"), city="London",
        address1="1 Main St", phonenumber="+441234567890",
    )  # fmt: skip
    vps = whmcs.add_product("VPS S", "5.00")
    whmcs.add_service(alice, vps, dedicatedip="198.51.100.7")
    return alice


async def test_a_linked_customer_renews_tops_up_and_pays_on_whmcs(
    live: LiveBot, standin: WhmcsStandIn
) -> None:
    bot, whmcs = live, standin
    alice = seed(whmcs)
    user = bot.user(CUSTOMER_ID)
    linked = await link(bot, whmcs, user, "alice@example.com")
    assert "$20.00" in linked.text

    # Orders: the WHMCS service, renewed from the credit.
    [service] = whmcs.services.values()
    due = service.nextduedate
    start = await bot.send(user, "/orders")
    listing = await bot.reply(to(CUSTOMER_ID, contains="Your orders"), start)
    assert listing.button_texts()[0] == f"#{service.id} · VPS S"
    start = await bot.press(user, listing, f"#{service.id}")
    details = await bot.reply(lambda c: c.method == "editMessageText", start)
    assert "198.51.100.7" in details.text
    start = await bot.press(user, details, "Renew")
    periods = await bot.reply(lambda c: c.method == "editMessageText", start)
    start = await bot.press(user, periods, "1 month")
    confirm = await bot.reply(lambda c: c.method == "editMessageText", start)
    assert confirm.button_texts()[0] == "✅ Pay $5.00"
    start = await bot.press(user, confirm, "Pay")
    await bot.reply(lambda c: c.method == "answerCallbackQuery" and c.get("text"), start)
    assert due is not None and service.nextduedate is not None and service.nextduedate > due
    assert whmcs.clients[alice.id].credit == Decimal("15.00")
    assert len(whmcs.called("ApplyCredit")) == 1

    # A Stars top-up: one AddTransaction however often the payment is delivered.
    start = await bot.send(user, "/topup")
    chooser = await bot.reply(to(CUSTOMER_ID, contains="Choose the currency"), start)
    start = await bot.press(user, chooser, "USD")
    prompt = await bot.reply(lambda c: c.method == "editMessageText" and "Top-up" in c.text, start)
    start = await bot.press(user, prompt, "$10.00")
    invoice = await bot.reply(
        lambda c: c.method == "editMessageText" and "Invoice No." in c.text, start
    )
    start = await bot.press(user, invoice, "Telegram Stars")
    sent = await bot.reply(lambda c: c.method == "sendInvoice", start)
    payload, stars = sent["payload"], sent["prices"][0]["amount"]
    start = len(bot.fake.calls)
    await bot.deliver(bot.fake.pre_checkout(user, "XTR", stars, payload))
    answer = await bot.reply(lambda c: c.method == "answerPreCheckoutQuery", start)
    assert answer["ok"] is True
    for _ in range(3):
        start = len(bot.fake.calls)
        await bot.deliver(bot.fake.successful_payment(user, "XTR", stars, payload, "wh-charge-1"))
        await bot.reply(to(CUSTOMER_ID), start)
    assert [c.params["transid"] for c in whmcs.called("AddTransaction")] == ["wh-charge-1"]
    assert whmcs.clients[alice.id].credit == Decimal("25.00")

    # An invoice of the WHMCS billing, paid from the credit.
    bill = whmcs.add_invoice(alice, InvoiceLine("Backup add-on", Decimal("7.00")))
    start = await bot.send(user, "/invoices")
    listing = await bot.reply(to(CUSTOMER_ID, contains="Invoices"), start)
    start = await bot.press(user, listing, str(bill.id))
    shown = await bot.reply(lambda c: c.method == "editMessageText", start)
    start = await bot.press(user, shown, "Pay from the balance")
    await bot.reply(lambda c: c.method in ("editMessageText", "answerCallbackQuery"), start)
    await asyncio.sleep(0.2)
    assert whmcs.invoices[bill.id].status == "Paid"
    assert whmcs.clients[alice.id].credit == Decimal("18.00")


async def test_support_answers_from_the_staff_group_and_from_whmcs(
    live: LiveBot, standin: WhmcsStandIn
) -> None:
    bot, whmcs = live, standin
    seed(whmcs)
    fake = bot.fake
    group = fake.add_chat(Chat(id=STAFF, type="supergroup", title="Support", is_forum=True))
    fake.set_member(STAFF, ANNA.id, "administrator")
    user = bot.user(CUSTOMER_ID)
    await link(bot, whmcs, user, "alice@example.com")

    start = await bot.send(user, "/newticket")
    menu = await bot.reply(to(CUSTOMER_ID, contains="New ticket"), start)
    start = await bot.press(user, menu, "Technical support")
    await bot.reply(lambda c: c.method == "editMessageText" and "subject" in c.text, start)
    start = await bot.send(user, "Server is down")
    await bot.reply(to(CUSTOMER_ID, contains="Describe"), start)
    start = await bot.send(user, "No ping since 10:00")
    draft = await bot.reply(to(CUSTOMER_ID, contains="Draft"), start)
    start = await bot.press(user, draft, "Create ticket")
    topic = await bot.reply(lambda c: c.method == "createForumTopic", start)
    [ticket] = whmcs.tickets.values()
    assert topic["name"] == f"🔴 #{ticket.id} Server is down"
    assert whmcs.called("OpenTicket")[0].params["deptid"] == "1"
    await bot.reply(to(CUSTOMER_ID, "editMessageText", f"Ticket #{ticket.id} is created"), start)

    start = await bot.send(
        ANNA, "Rebooted it", chat=group, thread_id=topic.result["message_thread_id"]
    )
    answer = await bot.reply(to(CUSTOMER_ID, contains="answered"), start)
    assert answer.text.endswith("Rebooted it")
    [posted] = whmcs.called("AddTicketReply")
    assert posted.params["adminusername"] == "anna"

    # A reply written in WHMCS's admin area reaches the customer once (the sync job).
    start = len(fake.calls)
    whmcs.admin_reply(ticket, "Oleg", "Also upgraded the kernel")
    relayed = await bot.reply(to(CUSTOMER_ID, contains="upgraded the kernel"), start, timeout=20)
    assert "Support" in relayed.text
    await asyncio.sleep(3)  # a few more sync runs
    again = [c for c in fake.calls[start:] if "upgraded the kernel" in (c.get("text") or "")]
    assert len(again) == 1
    # The staff answer from the group is not echoed back as a WHMCS reply.
    echoed = [
        c
        for c in fake.calls
        if c.get("chat_id") == CUSTOMER_ID and "Rebooted it" in (c.get("text") or "")
    ]
    assert len(echoed) == 1


async def test_a_payment_while_whmcs_is_down_is_credited_once_it_is_back(
    tmp_path: Path, telegram_server: TelegramServer, standin: WhmcsStandIn
) -> None:
    whmcs, fake = standin, telegram_server.fake
    alice = seed(whmcs)
    env = whmcs_env(tmp_path, telegram_server, whmcs)
    process, log = await _start(tmp_path, env, fake, "getUpdates")
    bot = LiveBot(fake, process, log)
    user = bot.user(CUSTOMER_ID)
    try:
        await link(bot, whmcs, user, "alice@example.com")
        start = await bot.send(user, "/topup")
        chooser = await bot.reply(to(CUSTOMER_ID, contains="Choose the currency"), start)
        start = await bot.press(user, chooser, "USD")
        prompt = await bot.reply(
            lambda c: c.method == "editMessageText" and "Top-up" in c.text, start
        )
        start = await bot.press(user, prompt, "$10.00")
        invoice = await bot.reply(
            lambda c: c.method == "editMessageText" and "Invoice No." in c.text, start
        )
        start = await bot.press(user, invoice, "Telegram Stars")
        sent = await bot.reply(lambda c: c.method == "sendInvoice", start)
        payload, stars = sent["payload"], sent["prices"][0]["amount"]
        start = len(fake.calls)
        await bot.deliver(fake.pre_checkout(user, "XTR", stars, payload))
        await bot.reply(lambda c: c.method == "answerPreCheckoutQuery", start)

        await whmcs.go_down()
        start = len(fake.calls)
        await bot.deliver(fake.successful_payment(user, "XTR", stars, payload, "wh-down-1"))
        held = await bot.reply(to(CUSTOMER_ID, contains="as soon as our billing"), start)
        assert held.text.startswith("Payment received.")
        assert whmcs.clients[alice.id].credit == Decimal("20.00")
    finally:
        await _stop(process, log)

    # WHMCS is back; the bot restarts and pushes the kept payment, exactly once.
    await whmcs.come_back()
    start = len(fake.calls)
    process, log = await _start(tmp_path, env, fake, "getUpdates", log_name="bot2.log")
    try:
        receipt = await LiveBot(fake, process, log).reply(
            to(CUSTOMER_ID, contains="Payment received</b>"), start, timeout=30
        )
        assert "$30.00" in receipt.text
    finally:
        await _stop(process, log)
    assert [c.params["transid"] for c in whmcs.called("AddTransaction")] == ["wh-down-1"]
    assert whmcs.clients[alice.id].credit == Decimal("30.00")
