"""The unit of work: billing work is committed before any Bot API call, so money survives
every single fault of Telegram — a failed or dropped reply, a killed process, a refund whose
answer is lost. Runs on SQLite and PostgreSQL through the production dispatcher."""

from __future__ import annotations

import asyncio
import sqlite3
from datetime import UTC, datetime, timedelta

import pytest
from aiogram.types import Update
from sqlalchemy import func, select
from sqlalchemy.engine import make_url

from bot.factory import create_gateway
from bot.inbox import replay_payment_updates
from services.billing import in_transaction, per_call
from services.embedded import models as m
from services.outbox import OutboxSender
from tests.conftest import _admin_execute, make_settings
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, Chat, User
from tests.test_payments_handlers import balance_of, customer

RECEIPT = (
    "✅ <b>Payment received</b>\n\n"
    "Invoice No. {number}: 500 ⭐\n"
    "Credited: €10.00\n"
    "Balance: <b>€10.00</b>"
)
STAFF_CHAT = -1001
ADMIN = User(id=9001, first_name="Admin")


async def paid_invoice(driver: BotDriver, user_id: int) -> tuple[User, int, dict, str]:
    """A customer, a 10 EUR invoice, and the successful_payment update of 500 Stars for it."""
    user, account_id = await customer(driver, user_id)
    async with driver.gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
    update = driver.fake.successful_payment(user, "XTR", 500, invoice.payload, f"ch-{user_id}")
    return user, account_id, update, invoice.number


async def outbox_rows(driver: BotDriver, chat_id: int) -> list[tuple[str, str, str]]:
    async with driver.gateway.transaction() as billing:
        rows = await billing.session.scalars(
            select(m.OutboxMessage).where(m.OutboxMessage.chat_id == chat_id)
        )
        return [(r.method, r.payload["text"], r.status) for r in rows]


async def drain_outbox(driver: BotDriver) -> None:
    async def no_sleep(_seconds: float) -> None:
        return None

    await OutboxSender(driver.gateway, driver.bot, sleep=no_sleep, owner="test").drain(budget=5)


def fail_reply(driver: BotDriver, chat_id: int, fault: str) -> None:
    def to_customer(params: dict) -> bool:
        return params.get("chat_id") == chat_id

    if fault == "500":
        driver.fake.fail_next("sendMessage", 500, "Internal Server Error", match=to_customer)
    elif fault == "429":  # longer than the bot waits inline
        driver.fake.fail_next(
            "sendMessage", 429, "Too Many Requests: retry after 60", 60, match=to_customer
        )
    else:
        driver.fake.drop_next("sendMessage", match=to_customer)


@pytest.mark.parametrize("fault", ["500", "429", "dropped"])
async def test_a_payment_is_credited_once_when_its_reply_fails(
    db_driver: BotDriver, fault: str
) -> None:
    driver = db_driver
    user, account_id, update, number = await paid_invoice(driver, 801)
    fail_reply(driver, user.id, fault)

    calls = await driver.feed(update)

    (failed,) = [c for c in calls if c.method == "sendMessage"]  # tried once, not repeated
    if fault == "dropped":
        assert failed.dropped
    else:
        assert failed.error is not None and failed.error.status == int(fault)
    assert await balance_of(driver, account_id) == (1000, 1000, 1)
    receipt = RECEIPT.format(number=number)
    assert await outbox_rows(driver, user.id) == [("sendMessage", receipt, "pending")]
    # Telegram redelivers the same payment: nothing more is credited or queued.
    again = await driver.feed(driver.fake._update(message=update["message"]))
    assert [c.text for c in again if c.method == "sendMessage"] == [
        "This payment has already been credited. Balance: <b>€10.00</b>"
    ]
    assert await balance_of(driver, account_id) == (1000, 1000, 1)
    # The queued receipt is delivered once by the sender.
    await drain_outbox(driver)
    assert [c.text for c in driver.fake.sent(user.id)].count(receipt) == 1
    assert await outbox_rows(driver, user.id) == [("sendMessage", receipt, "sent")]


async def test_a_payment_update_kept_but_never_handled_is_credited_on_replay(
    db_driver: BotDriver,
) -> None:
    """A process killed after keeping the update (polling acknowledged it) and before the
    credit: the replay on start credits it once and sends the receipt."""
    driver = db_driver
    user, account_id, update, number = await paid_invoice(driver, 802)
    billing = per_call(driver.gateway)
    parsed = Update.model_validate(update, context={"bot": driver.bot})
    await billing.keep_payment_update("ch-802", parsed.update_id, parsed.model_dump_json())

    before = len(driver.fake.calls)
    assert await replay_payment_updates(driver.dp, driver.bot, datetime.now(UTC)) == 1
    assert [c.text for c in driver.fake.sent(user.id)[-1:]] == [RECEIPT.format(number=number)]
    assert await balance_of(driver, account_id) == (1000, 1000, 1)
    # Answered now: a second start replays nothing and sends nothing.
    after = len(driver.fake.calls)
    assert await replay_payment_updates(driver.dp, driver.bot, datetime.now(UTC)) == 0
    assert len(driver.fake.calls) == after > before


async def test_a_payment_credited_but_never_answered_is_answered_once_on_replay(
    db_driver: BotDriver,
) -> None:
    """Killed after the commit and before the reply: the replay does not credit again, and the
    customer gets the receipt they never saw (not "already credited")."""
    driver = db_driver
    user, account_id, update, number = await paid_invoice(driver, 803)
    billing = per_call(driver.gateway)
    parsed = Update.model_validate(update, context={"bot": driver.bot})
    await billing.keep_payment_update("ch-803", parsed.update_id, parsed.model_dump_json())
    invoice_id = int(update["message"]["successful_payment"]["invoice_payload"].split(":")[-1])
    await billing.record_payment(
        account_id, invoice_id, currency="XTR", total_amount=500, charge_id="ch-803"
    )

    assert await replay_payment_updates(driver.dp, driver.bot, datetime.now(UTC)) == 1
    assert [c.text for c in driver.fake.sent(user.id)[-1:]] == [RECEIPT.format(number=number)]
    assert await balance_of(driver, account_id) == (1000, 1000, 1)


async def test_a_kept_update_younger_than_the_grace_is_left_to_telegram(
    driver: BotDriver,
) -> None:
    user, _, update, _ = await paid_invoice(driver, 804)
    parsed = Update.model_validate(update, context={"bot": driver.bot})
    await per_call(driver.gateway).keep_payment_update(
        "ch-804", parsed.update_id, parsed.model_dump_json()
    )
    before = len(driver.fake.calls)
    old_enough = datetime.now(UTC) - timedelta(seconds=60)
    assert await replay_payment_updates(driver.dp, driver.bot, old_enough) == 0
    assert len(driver.fake.calls) == before
    assert await replay_payment_updates(driver.dp, driver.bot, datetime.now(UTC)) == 1
    assert driver.fake.sent(user.id)[-1].text.startswith("✅ <b>Payment received</b>")


async def test_polling_keeps_a_payment_before_acknowledging_it(driver: BotDriver) -> None:
    """DurableDispatcher commits the payment update before it yields it, i.e. before aiogram's
    next getUpdates (with a later offset) acknowledges it."""
    _user, _, update, _ = await paid_invoice(driver, 805)
    driver.fake.enqueue_update(update)
    updates = driver.dp._listen_updates(driver.bot, polling_timeout=1)
    first = await anext(updates)
    assert first.update_id == update["update_id"]
    assert len(driver.fake.calls_of("getUpdates")) == 1  # nothing acknowledged yet
    async with driver.gateway.transaction() as billing:
        kept = await billing.session.get(m.PaymentUpdate, "ch-805")
        assert kept is not None and (kept.update_id, kept.answered_at) == (first.update_id, None)
    await updates.aclose()


async def staff_refund(driver: BotDriver, charge_id: str) -> list[Call]:
    staff_chat = driver.fake.chats.get(STAFF_CHAT) or driver.fake.add_chat(
        Chat(id=STAFF_CHAT, type="supergroup", title="Staff")
    )
    return await driver.send(ADMIN, f"/refund {charge_id}", chat=staff_chat)


async def test_a_refund_whose_staff_reply_fails_is_made_once(db_driver: BotDriver) -> None:
    driver = db_driver
    _user, account_id, update, _ = await paid_invoice(driver, 811)
    await driver.feed(update)
    driver.fake.fail_next(
        "sendMessage", 500, "Internal Server Error", match=lambda p: p["chat_id"] == STAFF_CHAT
    )
    driver.allow_unexpected_errors = True  # the failed reply is logged by the error handler
    await staff_refund(driver, "ch-811")
    driver.allow_unexpected_errors = False
    assert driver.fake.refunds == [(811, "ch-811")]
    assert await balance_of(driver, account_id) == (0, 0, 2)
    again = await staff_refund(driver, "ch-811")
    assert [c.text for c in again if c.method == "sendMessage"] == [
        "This payment has already been refunded."
    ]
    assert driver.fake.refunds == [(811, "ch-811")]
    assert await balance_of(driver, account_id) == (0, 0, 2)


async def test_a_refund_whose_answer_was_lost_is_finished_by_the_retry(
    db_driver: BotDriver,
) -> None:
    """Telegram refunded but the answer never came back: the bot asks again, Telegram says
    CHARGE_ALREADY_REFUNDED, and the refund is complete — once."""
    driver = db_driver
    _user, account_id, update, _ = await paid_invoice(driver, 812)
    await driver.feed(update)
    driver.fake.drop_next("refundStarPayment", performed=True)
    calls = await staff_refund(driver, "ch-812")
    assert next(c.text for c in calls if c.method == "sendMessage") == (
        "↩️ Refunded 500 ⭐ to tg812; €10.00 was taken off the balance."
    )
    assert driver.fake.refunds == [(812, "ch-812")]
    assert await balance_of(driver, account_id) == (0, 0, 2)


async def test_an_unconfirmed_refund_stays_pending_until_asked_again(
    driver: BotDriver,
) -> None:
    _user, account_id, update, _ = await paid_invoice(driver, 813)
    await driver.feed(update)
    for _attempt in range(4):  # the first try and every retry of the flow control
        driver.fake.fail_next("refundStarPayment", 502, "Bad Gateway")
    calls = await staff_refund(driver, "ch-813")
    assert [c.text for c in calls if c.method == "sendMessage"] == [
        "Telegram did not confirm the refund (Bad Gateway). It is recorded as pending and the "
        "money is held: send /refund <code>ch-813</code> again to finish it."
    ]
    assert driver.fake.refunds == []
    assert await balance_of(driver, account_id) == (0, 0, 2)  # held, not yet given back
    async with driver.gateway.transaction() as billing:
        payment = await billing.find_payment("ch-813")
        assert payment is not None and payment.refund_pending
    calls = await staff_refund(driver, "ch-813")
    assert next(c.text for c in calls if c.method == "sendMessage") == (
        "↩️ Refunded 500 ⭐ to tg813; €10.00 was taken off the balance."
    )
    assert driver.fake.refunds == [(813, "ch-813")]
    assert await balance_of(driver, account_id) == (0, 0, 2)


async def test_the_stand_in_refuses_a_bot_api_call_inside_a_transaction(
    driver: BotDriver, caplog: pytest.LogCaptureFixture
) -> None:
    """The check every in-process test relies on (the fake_telegram fixture asserts the list is
    empty at the end of each test) does catch a call made with a transaction open, and the
    production session logs it (the e2e tests look for that line)."""
    async with driver.gateway.transaction(read_only=True):
        assert in_transaction()
        with pytest.raises(AssertionError, match="getMe called inside a billing transaction"):
            await driver.bot.get_me()
    assert not in_transaction()
    assert driver.fake.calls_in_transaction == ["getMe"]
    driver.fake.calls_in_transaction.clear()
    assert [r.getMessage() for r in caplog.records if r.name == "bot.middlewares"] == [
        "Bot API call getMe inside a billing transaction"
    ]


async def test_screens_that_only_read_take_no_write_lock(driver: BotDriver) -> None:
    """With another writer holding SQLite's write lock, the menu and the orders list are still
    answered at once (a write would wait for the lock: busy_timeout is 30 s)."""
    user, _ = await customer(driver, 821)
    menu = await driver.send(user, "/menu")
    database = make_url(str(driver.gateway.engine.url)).database
    holder = sqlite3.connect(database, isolation_level=None)
    holder.execute("BEGIN IMMEDIATE")
    try:
        calls = await asyncio.wait_for(driver.send(user, "/menu"), timeout=5)
        assert calls[-1].text == menu[-1].text
        orders = await asyncio.wait_for(driver.click(user, calls[-1], "Orders"), timeout=5)
        assert [c.method for c in orders] == ["editMessageText", "answerCallbackQuery"]
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def test_the_ledger_matches_after_the_faults(driver: BotDriver) -> None:
    """Every account's balance equals its ledger after a mix of failed replies."""
    ids = []
    for user_id, fault in ((831, "500"), (832, "429"), (833, "dropped")):
        user, account_id, update, _ = await paid_invoice(driver, user_id)
        fail_reply(driver, user.id, fault)
        await driver.feed(update)
        ids.append(account_id)
    async with driver.gateway.transaction() as billing:
        for account_id in ids:
            account = await billing.get_account(account_id)
            assert account.balance_minor == await billing.ledger_sum(account_id) == 1000
        payments = await billing.session.scalar(select(func.count()).select_from(m.Payment))
        assert payments == 3


async def test_a_read_survives_postgresql_dropping_the_pooled_connections(
    postgres_url: str,
) -> None:
    """No ping before each checkout: a read that meets a connection the server dropped (a
    restart) is made again on a fresh one; the customer never sees it."""
    gateway = create_gateway(make_settings(postgres_url))
    try:
        billing = per_call(gateway)
        account, _ = await billing.get_or_create_account(861, 861, name="Ann")
        for _ in range(3):  # some connections in the pool
            await asyncio.gather(*(billing.get_account(account.id) for _ in range(4)))
        database = make_url(postgres_url).database
        await _admin_execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            f"WHERE datname = '{database}' AND pid <> pg_backend_pid()"
        )
        found = await billing.find_account_by_telegram(861)
        assert found is not None and found.id == account.id
        assert (await billing.get_account(account.id)).telegram_name == "Ann"
    finally:
        await gateway.close()
