"""The staff group through the dispatcher: relay both ways (forum topics and a plain group with
replies), staff commands and their refusals, a deleted topic, a blocked customer, 429 retries,
the membership cache and the unanswered-ticket reminder."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select

from bot.flow_control import installed
from handlers.staff import remind_unanswered
from keyboards.tickets import TicketCb
from services.embedded import models as m
from services.security import hash_secret_sync
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, Chat, User
from tests.test_tickets_handlers import (
    STAFF,
    open_ticket,
    place_in_db,
    sends,
    staff_forum,
    staff_plain_group,
    tickets_in_db,
)

CUSTOMER = 501
ANNA = User(id=77, first_name="Anna", language_code="ru")  # staff texts stay in DEFAULT_LANGUAGE
ADMIN = User(id=9001, first_name="Boss")
STRANGER = User(id=88, first_name="Eve")
ANSWER_BUTTONS = ["✍️ Reply", "📄 Open ticket"]
STARS = ["⭐1", "⭐2", "⭐3", "⭐4", "⭐5"]  # the rating asked under the close notice


async def forum_ticket(driver: BotDriver, lang: str = "en") -> tuple[Chat, User]:
    group = staff_forum(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    customer = driver.user(CUSTOMER, language_code=lang)
    await open_ticket(driver, customer, lang=lang)
    return group, customer


def replies_in_group(calls: list[Call]) -> list[str]:
    return [c.text for c in sends(calls, STAFF)]


async def test_staff_answer_in_topic_reaches_the_customer_and_the_reply_comes_back(
    driver: BotDriver,
) -> None:
    group, customer = await forum_ticket(driver)
    calls = await driver.send(ANNA, "Please check <now>", chat=group, thread_id=100)
    # The customer first, then the topic's title: answered (🔵), waiting for the customer.
    assert [c.method for c in calls] == ["getChatMember", "sendMessage", "editForumTopic"]
    push, title = calls[1:]
    assert (title["chat_id"], title["message_thread_id"], title["name"]) == (
        STAFF,
        100,
        "🔵 #1 Invoice question",
    )
    assert (push["chat_id"], push.text) == (
        CUSTOMER,
        "💬 <b>Support</b> answered in ticket #1 «Invoice question»:\n\nPlease check &lt;now&gt;",
    )
    assert push.button_texts() == ANSWER_BUTTONS
    [ticket] = await tickets_in_db(driver)
    assert ticket.status == "answered"

    # The customer answers with the button under the pushed message.
    await driver.click(customer, push, "Reply")
    calls = await driver.send(customer, "Still broken")
    [relay] = sends(calls, STAFF)
    assert (relay.text, relay["message_thread_id"]) == (
        "👤 <b>Customer</b> · ticket #1:\nStill broken",
        100,
    )

    # Photos and documents from staff go as files; membership is cached (one getChatMember).
    calls = await driver.send(ANNA, chat=group, thread_id=100, photo="AgADstaff", caption="look")
    photo, title = calls  # the customer's reply made the title 🔴 again
    assert (title.method, title["name"]) == ("editForumTopic", "🔵 #1 Invoice question")
    assert (photo.method, photo["chat_id"], photo["photo"], photo.text) == (
        "sendPhoto",
        CUSTOMER,
        "AgADstaff",
        "💬 <b>Support</b> answered in ticket #1 «Invoice question»:\n\nlook",
    )
    assert photo.button_texts() == ANSWER_BUTTONS
    calls = await driver.send(ANNA, chat=group, thread_id=100, document="BQADguide")
    [doc] = calls
    assert (doc.method, doc["document"], doc.text) == (
        "sendDocument",
        "BQADguide",
        "💬 <b>Support</b> answered in ticket #1 «Invoice question»:",
    )
    assert len(driver.fake.calls_of("getChatMember")) == 1

    async with driver.gateway.transaction() as billing:
        thread = await billing.ticket_messages(ticket.account_id, 1)
    assert [(x.author, x.author_name, x.text) for x in thread] == [
        ("customer", "", "Wrong amount"),
        ("staff", "Anna", "Please check <now>"),
        ("customer", "", "Still broken"),
        ("staff", "Anna", "look"),
        ("staff", "Anna", ""),
    ]
    assert [a.file_id for x in thread for a in x.attachments] == ["AgADstaff", "BQADguide"]

    # Unsupported content is not relayed; staff are told so in the topic.
    calls = await driver.send(
        ANNA, chat=group, thread_id=100, extra={"location": {"latitude": 1.0, "longitude": 2.0}}
    )
    assert [(c["chat_id"], c.text) for c in calls] == [
        (STAFF, "Only text, photos and documents reach the customer; this was not sent.")
    ]


async def test_answer_reaches_a_russian_customer_in_russian(driver: BotDriver) -> None:
    group, _customer = await forum_ticket(driver, lang="ru")
    calls = await driver.send(ANNA, "Проверьте сейчас", chat=group, thread_id=100)
    assert [c.method for c in calls] == ["getChatMember", "sendMessage", "editForumTopic"]
    push = calls[1]
    assert push.text == (
        "💬 <b>Поддержка</b> ответила в обращении #1 «Invoice question»:\n\nПроверьте сейчас"
    )
    assert push.button_texts() == ["✍️ Ответить", "📄 Открыть обращение"]
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=100)
    notice = next(c for c in calls if c["chat_id"] == CUSTOMER)
    assert notice.text == (
        "✅ Поддержка закрыла ваше обращение #1 «Invoice question».\nЕсли проблема не решена, "
        "ответьте в течение 7 дней, чтобы снова открыть обращение."
    )
    assert notice.button_texts() == [*STARS, "📄 Открыть обращение", "⬅️ Главное меню"]
    assert replies_in_group(calls) == ["✅ Ticket #1 is closed.\nThe customer was notified."]


async def test_plain_group_works_by_replies_to_the_ticket_messages(driver: BotDriver) -> None:
    group = staff_plain_group(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    customer = driver.user(CUSTOMER)
    calls = await open_ticket(driver, customer)
    # Asked what the group is (getChat), the bot does not try createForumTopic in it.
    assert [c.method for c in calls if c.get("chat_id") == STAFF] == ["getChat", "sendMessage"]
    [header] = sends(calls, STAFF)
    assert header.get("message_thread_id") is None
    assert header.text.startswith("🎫 <b>Ticket #1</b> · Invoice question\n")
    [ticket] = await tickets_in_db(driver)
    place = await place_in_db(driver, ticket.id)
    assert place is not None and (place.chat_id, place.thread_id) == (STAFF, None)

    # Plain messages in the group belong to no ticket: silence.
    assert await driver.send(ANNA, "coffee anyone?", chat=group) == []

    calls = await driver.send(ANNA, "We are on it", chat=group, reply_to=header.result)
    push = next(c for c in calls if c.method == "sendMessage")
    assert (push["chat_id"], push.text) == (
        CUSTOMER,
        "💬 <b>Support</b> answered in ticket #1 «Invoice question»:\n\nWe are on it",
    )
    staff_answer = driver.fake.messages[
        (STAFF, max(k[1] for k in driver.fake.messages if k[0] == STAFF))
    ]

    await driver.click(customer, push, "Reply")
    calls = await driver.send(customer, "Thanks, waiting")
    [relay] = sends(calls, STAFF)
    assert (relay.text, relay.get("message_thread_id")) == (
        "👤 <b>Customer</b> · ticket #1:\nThanks, waiting",
        None,
    )
    # A reply to the relayed customer message, and to a staff answer, reach the customer too.
    calls = await driver.send(ANNA, "Fixed now", chat=group, reply_to=relay.result)
    assert [c.text for c in calls if c.get("chat_id") == CUSTOMER] == [
        "💬 <b>Support</b> answered in ticket #1 «Invoice question»:\n\nFixed now"
    ]
    calls = await driver.send(ANNA, "One more thing", chat=group, reply_to=staff_answer)
    assert [c.get("chat_id") for c in calls if c.method == "sendMessage"] == [CUSTOMER]

    calls = await driver.send(ANNA, "/close", chat=group, reply_to=header.result)
    assert replies_in_group(calls) == ["✅ Ticket #1 is closed.\nThe customer was notified."]
    calls = await driver.send(ANNA, "/close", chat=group)
    assert replies_in_group(calls) == [
        "Use this command inside a ticket's topic, or as a reply to a message of the ticket."
    ]


async def test_group_messages_outside_ticket_topics_are_ignored(driver: BotDriver) -> None:
    group, _customer = await forum_ticket(driver)
    driver.fake.topics[(STAFF, 555)] = "Chatter"
    assert await driver.send(ANNA, "hello all", chat=group) == []  # the General topic
    assert await driver.send(ANNA, "off-topic", chat=group, thread_id=555) == []
    assert await driver.send(ANNA, "/unknown", chat=group, thread_id=100) == []
    # A non-member's message in a ticket topic is not relayed either.
    calls = await driver.send(STRANGER, "hi from outside", chat=group, thread_id=100)
    assert [c.method for c in calls] == ["getChatMember"]
    # Another group entirely: nothing, not even for commands.
    other = driver.fake.add_chat(Chat(id=-2002, type="supergroup", title="Other"))
    assert await driver.send(ANNA, "/close", chat=other) == []
    assert await driver.send(ADMIN, "/credit 1 10 test", chat=other) == []
    [ticket] = await tickets_in_db(driver)
    assert ticket.status == "open"


async def test_staff_commands_refused_for_non_staff_and_outside_the_group(
    driver: BotDriver,
) -> None:
    group, customer = await forum_ticket(driver)
    calls = await driver.send(STRANGER, "/close", chat=group, thread_id=100)
    assert replies_in_group(calls) == ["⛔ Only support staff can use this command."]
    calls = await driver.send(ANNA, "/credit 1 10 gift", chat=group, thread_id=100)
    assert replies_in_group(calls) == ["⛔ Only administrators can use this command."]
    calls = await driver.send(ANNA, "/approve_company 1", chat=group)
    assert replies_in_group(calls) == ["⛔ Only administrators can use this command."]
    [ticket] = await tickets_in_db(driver)
    assert ticket.status == "open"

    calls = await driver.send(customer, "/close")
    assert [(c["chat_id"], c.text) for c in calls] == [
        (CUSTOMER, "This command is for support staff and works only in the staff group.")
    ]
    driver.user(ADMIN.id)
    calls = await driver.send(ADMIN, "/credit 1 10 gift")
    assert [c.text for c in calls] == [
        "This command is for support staff and works only in the staff group."
    ]
    ru = driver.user(503, language_code="ru")
    calls = await driver.send(ru, "/info")
    assert [c.text for c in calls] == [
        "Эта команда — для сотрудников поддержки и работает только в группе поддержки."
    ]
    async with driver.gateway.transaction() as billing:
        assert (await billing.get_account(1)).balance_minor == 0


async def test_close_and_reopen_commands(driver: BotDriver) -> None:
    group, _customer = await forum_ticket(driver)
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=100)
    notice = next(c for c in calls if c["chat_id"] == CUSTOMER)
    assert notice.text == (
        "✅ Support closed your ticket #1 «Invoice question».\n"
        "If the problem is not solved, reply within 7 days to reopen it."
    )
    assert notice.button_texts() == [*STARS, "📄 Open ticket", "⬅️ Main menu"]
    [reply] = sends(calls, STAFF)
    assert (reply.text, reply["message_thread_id"]) == (
        "✅ Ticket #1 is closed.\nThe customer was notified.",
        100,
    )
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=100)
    assert [c.text for c in calls if c.method == "sendMessage"] == ["Ticket #1 is already closed."]
    calls = await driver.send(ANNA, "/reopen", chat=group, thread_id=100)
    notice = next(c for c in calls if c["chat_id"] == CUSTOMER)
    assert notice.text == "🔄 Support reopened your ticket #1 «Invoice question»."
    assert notice.button_texts() == ANSWER_BUTTONS
    assert replies_in_group(calls) == ["🔄 Ticket #1 is open again."]
    calls = await driver.send(ANNA, "/reopen", chat=group, thread_id=100)
    assert replies_in_group(calls) == ["Ticket #1 is not closed."]
    [ticket] = await tickets_in_db(driver)
    assert ticket.status == "open"


async def test_info_verify_and_note(driver: BotDriver) -> None:
    group, customer = await forum_ticket(driver)
    async with driver.gateway.transaction() as billing:
        row = await billing.session.get(m.Account, 1)
        assert row is not None
        row.first_name, row.last_name, row.country = "Ivan", "Petrov", "DE"
        row.email, row.email_confirmed, row.phone = "ivan@example.com", True, "+491701234567"
        row.code_word_hash = hash_secret_sync("blue falcon")
        await billing.credit(1, 2500, kind="topup", idempotency_key="t-1")

    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert replies_in_group(calls) == [
        "👤 <b>Account #1</b> <code>tg501</code>\n"
        "Customer: Test (Telegram id 501)\n"
        "Name: Ivan Petrov\n"
        "E-mail: ivan@example.com (confirmed)\n"
        "Phone: +491701234567 (not confirmed)\n"
        "Country: DE\n"
        "Profile: individual\n"
        "Balance: €25.00\n"
        "Orders: none"
    ]

    command = driver.fake.user_message(ANNA, "/verify blue falcon", chat=group, thread_id=100)
    calls = await driver.feed(command)
    assert [c.method for c in calls] == ["deleteMessage", "sendMessage"]  # membership cached
    assert calls[-2]["message_id"] == command["message"]["message_id"]
    assert (STAFF, command["message"]["message_id"]) not in driver.fake.messages
    assert (calls[-1].text, calls[-1]["message_thread_id"]) == (
        "✅ The code word matches (ticket #1).",
        100,
    )
    calls = await driver.send(ANNA, "/verify red falcon", chat=group, thread_id=100)
    assert calls[-1].text == "❌ The code word does not match (ticket #1)."
    calls = await driver.send(ANNA, "/verify", chat=group, thread_id=100)
    assert replies_in_group(calls) == ["Usage: /verify &lt;code word&gt;"]
    assert not any("falcon" in str(c.params) for c in driver.fake.calls)

    calls = await driver.send(ANNA, "/note Customer is <upset>", chat=group, thread_id=100)
    assert replies_in_group(calls) == ["📝 Note saved to ticket #1. The customer does not see it."]
    assert [c for c in calls if c.get("chat_id") == CUSTOMER] == []
    calls = await driver.send(ANNA, "/note", chat=group, thread_id=100)
    assert replies_in_group(calls) == ["Usage: /note &lt;text&gt;"]
    async with driver.gateway.transaction() as billing:
        customer_view = await billing.ticket_messages(1, 1)
        staff_view = await billing.staff_ticket_messages(1)
    assert [x.author for x in customer_view] == ["customer"]
    assert [(x.author, x.text) for x in staff_view][-1] == ("note", "Customer is <upset>")
    # The customer's own view of the thread never shows the note.
    calls = await driver.press(
        customer, driver.screen_call(CUSTOMER), TicketCb(action="view", ticket_id=1).pack()
    )
    assert "upset" not in calls[0].text


async def test_admin_credit_debit_and_company_approval(driver: BotDriver) -> None:
    group, _customer = await forum_ticket(driver)
    update = driver.fake.user_message(ADMIN, "/credit 1 25.50 Goodwill for downtime", chat=group)
    calls = await driver.feed(update)
    assert replies_in_group(calls) == ["✅ Credited €25.50 to account #1 (tg501). Balance: €25.50."]
    assert driver.fake.calls_of("getChatMember") == []  # ADMIN_IDS need no lookup
    assert [c.text for c in calls if c.get("chat_id") == CUSTOMER] == [
        "💰 Our support credited €25.50 to your balance: Goodwill for downtime\n"
        "Balance: <b>€25.50</b>"
    ]
    # Telegram delivers the same message again: nothing changes, the customer is not told again.
    calls = await driver.feed({**update, "update_id": update["update_id"] + 1000})
    assert replies_in_group(calls) == ["This adjustment is already recorded; nothing was changed."]
    assert [c for c in calls if c.get("chat_id") == CUSTOMER] == []
    calls = await driver.send(ADMIN, "/debit tg501 100 too much", chat=group)
    assert replies_in_group(calls) == ["Not enough money on account #1: the balance is €25.50."]
    async with driver.gateway.transaction() as billing:
        await billing.set_language(1, "ru")  # the customer is told in their language
    calls = await driver.send(ADMIN, "/debit #1 5 Manual <fee>", chat=group, thread_id=100)
    assert replies_in_group(calls) == ["✅ Debited €5.00 from account #1 (tg501). Balance: €20.50."]
    assert [c.text for c in calls if c.get("chat_id") == CUSTOMER] == [
        "💸 Поддержка списала с баланса 5,00\xa0€: Manual &lt;fee&gt;\nБаланс: <b>20,50\xa0€</b>"
    ]
    for text, answer in [
        ("/credit 1 abc reason", "Invalid amount: abc."),
        ("/credit 1 -5 reason", "Invalid amount: -5."),
        ("/credit 1 10", "Usage: /credit &lt;account&gt; &lt;amount&gt; &lt;reason&gt;"),
        ("/debit", "Usage: /debit &lt;account&gt; &lt;amount&gt; &lt;reason&gt;"),
        ("/credit nobody 10 x", "Account nobody not found."),
        ("/approve_company", "Usage: /approve_company &lt;account&gt;"),
        ("/approve_company 42", "Account 42 not found."),
    ]:
        calls = await driver.send(ADMIN, text, chat=group)
        assert replies_in_group(calls) == [answer], text
    async with driver.gateway.transaction() as billing:
        lines = await billing.list_ledger(1)
        assert await billing.ledger_sum(1) == 2050
    assert [(x.amount_minor, x.kind, x.description, x.actor) for x in lines.items] == [
        (-500, "adjustment", "Manual <fee>", "tg:9001"),
        (2550, "adjustment", "Goodwill for downtime", "tg:9001"),
    ]

    async with driver.gateway.transaction() as billing:
        row = await billing.session.get(m.Account, 1)
        assert row is not None
        row.profile_type = "company"
    calls = await driver.send(ADMIN, "/approve_company tg501", chat=group)
    assert replies_in_group(calls) == [
        "✅ The company profile of account #1 (tg501) is approved: payments are unblocked."
    ]
    assert [c.text for c in calls if c.get("chat_id") == CUSTOMER] == [
        "✅ Данные компании проверены: оплата разблокирована."
    ]
    async with driver.gateway.transaction() as billing:
        row = await billing.session.get(m.Account, 1)
        assert row is not None and row.company_verified is True


async def test_deleted_topic_is_recreated_and_the_conversation_continues(
    driver: BotDriver,
) -> None:
    group, customer = await forum_ticket(driver)
    driver.fake.delete_topic(STAFF, 100)
    menu = (await driver.send(customer, "/menu"))[-1]
    await driver.press(customer, menu, TicketCb(action="reply", ticket_id=1).pack())
    calls = await driver.send(customer, "Hello again")
    failed = [c for c in calls if c.error is not None]
    assert [(c.method, c.error.description) for c in failed] == [  # type: ignore[union-attr]
        ("sendMessage", "Bad Request: message thread not found")
    ]
    topic = next(c for c in calls if c.method == "createForumTopic")
    assert (topic["name"], topic.result["message_thread_id"]) == ("🔴 #1 Invoice question", 101)
    staff = sends(calls, STAFF)
    assert [c["message_thread_id"] for c in staff] == [101, 101]
    assert staff[0].text.startswith(
        "♻️ The topic of this ticket was deleted, so it was created again.\n\n"
        "🎫 <b>Ticket #1</b> · Invoice question\n"
    )
    assert staff[1].text == "👤 <b>Customer</b> · ticket #1:\nHello again"
    [ticket] = await tickets_in_db(driver)
    place = await place_in_db(driver, ticket.id)
    assert place is not None and place.thread_id == 101
    calls = await driver.send(ANNA, "Answer in the new topic", chat=group, thread_id=101)
    assert [c["chat_id"] for c in calls if c.method == "sendMessage"] == [CUSTOMER]


async def test_blocked_customer_is_reported_in_the_topic(driver: BotDriver) -> None:
    group, _customer = await forum_ticket(driver)
    driver.fake.block_bot(CUSTOMER)
    calls = await driver.send(ANNA, "Are you there?", chat=group, thread_id=100)
    blocked = [c for c in calls if c.error is not None]
    assert [(c["chat_id"], c.error.status) for c in blocked] == [(CUSTOMER, 403)]  # type: ignore[union-attr]
    [notice] = sends(calls, STAFF)
    assert (notice.text, notice["message_thread_id"]) == (
        "⚠️ The customer has blocked the bot: the message is saved in the ticket but was not "
        "delivered.",
        100,
    )
    async with driver.gateway.transaction() as billing:
        account = await billing.get_account(1)
        thread = await billing.staff_ticket_messages(1)
    assert account.unreachable is True
    assert thread[-1].text == "Are you there?"
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=100)
    assert replies_in_group(calls) == [
        "✅ Ticket #1 is closed.\n⚠️ The customer has blocked the bot."
    ]
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    assert "⚠️ The customer has blocked the bot.\nOrders: none" in replies_in_group(calls)[0]


@pytest.fixture
def waits(monkeypatch: pytest.MonkeyPatch, driver: BotDriver) -> list[float]:
    """The 429 waits under the staff desk's calls, recorded instead of slept: the flow control
    under every Bot API call (bot/flow_control.py) waits a short 429; a long one reaches the
    desk, which hands the post to the outbox."""
    recorded: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        recorded.append(seconds)

    monkeypatch.setattr(installed(driver.bot), "sleep", fake_sleep)
    return recorded


async def test_group_sends_wait_retry_after_on_429(driver: BotDriver, waits: list[float]) -> None:
    _group, customer = await forum_ticket(driver)
    driver.fake.fail_next(
        "sendMessage",
        429,
        "Too Many Requests: retry after 3",
        retry_after=3,
        match=lambda params: params.get("chat_id") == STAFF,
    )
    menu = (await driver.send(customer, "/menu"))[-1]
    await driver.press(customer, menu, TicketCb(action="reply", ticket_id=1).pack())
    calls = await driver.send(customer, "Busy group")
    attempts = [c for c in calls if c.method == "sendMessage" and c["chat_id"] == STAFF]
    assert [c.error.status if c.error else 200 for c in attempts] == [429, 200]
    assert attempts[-1].text == "👤 <b>Customer</b> · ticket #1:\nBusy group"
    assert waits == [3]


async def test_unanswered_ticket_gets_one_reminder(driver: BotDriver) -> None:
    group, _customer = await forum_ticket(driver)
    settings: Any = driver.dp["settings"]
    [ticket] = await tickets_in_db(driver)
    early = ticket.updated_at + timedelta(minutes=29)
    assert await remind_unanswered(driver.gateway, driver.bot, settings, early) == 0
    now = ticket.updated_at + timedelta(minutes=31)
    start = len(driver.fake.calls)
    assert await remind_unanswered(driver.gateway, driver.bot, settings, now) == 1
    [reminder] = sends(driver.fake.calls[start:], STAFF)
    assert (reminder.text, reminder["message_thread_id"]) == (
        "⏰ Ticket #1 has been waiting for an answer for 31 minutes.",
        100,
    )
    assert await remind_unanswered(driver.gateway, driver.bot, settings, now) == 0
    assert (
        await remind_unanswered(driver.gateway, driver.bot, settings, now + timedelta(hours=5)) == 0
    )
    # Answered tickets wait for the customer, not for the support: no reminder.
    await driver.send(ANNA, "Answer", chat=group, thread_id=100)
    async with driver.gateway.transaction() as billing:
        assert await billing.tickets_awaiting_reminder(now + timedelta(days=1)) == []
    [ticket] = await tickets_in_db(driver)
    place = await place_in_db(driver, ticket.id)
    assert place is not None and place.reminded_at is not None


async def test_customer_cannot_reach_another_customers_ticket_through_staff_links(
    driver: BotDriver,
) -> None:
    _group, _customer = await forum_ticket(driver)
    intruder = driver.user(600)
    menu = (await driver.send(intruder, "/menu"))[-1]
    calls = await driver.press(intruder, menu, TicketCb(action="reply", ticket_id=1).pack())
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "Not found. It may have been removed, or it is not yours."
    calls = await driver.send(intruder, "let me in")
    assert calls[-1].text.startswith("I did not understand that.")
    async with driver.gateway.transaction() as billing:
        links = (await billing.session.scalars(select(m.StaffMessageLink))).all()
    assert {link.ticket_id for link in links} == {1}


async def test_info_lists_orders_with_translated_statuses(driver: BotDriver) -> None:
    group, _customer = await forum_ticket(driver)
    async with driver.gateway.transaction() as billing:
        await billing.credit(1, 10_000, kind="topup", idempotency_key="t-info")
        vps = (await billing.list_tariffs("vps"))[0]
        order = await billing.place_order(1, vps.id, 1)
    calls = await driver.send(ANNA, "/info", chat=group, thread_id=100)
    [info] = replies_in_group(calls)
    assert f"• #{order.id} VPS 1 — ✅ Active, paid until " in info
    assert "Orders:\n" in info


async def test_a_long_429_queues_the_relay_in_the_outbox_instead_of_waiting(
    driver: BotDriver, waits: list[float]
) -> None:
    from datetime import UTC, datetime

    from services.outbox import OutboxSender

    _group, customer = await forum_ticket(driver)
    driver.fake.fail_next(
        "sendPhoto",
        429,
        "Too Many Requests: retry after 35",
        retry_after=35,
        match=lambda params: params.get("chat_id") == STAFF,
    )
    menu = (await driver.send(customer, "/menu"))[-1]
    await driver.press(customer, menu, TicketCb(action="reply", ticket_id=1).pack())
    calls = await driver.send(customer, "Group is busy", photo="AgPhoto42")
    assert waits == []  # the handler did not sit in its transaction for 35 s
    assert [c.error.status for c in calls if c.error] == [429]
    async with driver.gateway.transaction() as billing:
        queued = (
            await billing.session.scalars(select(m.OutboxMessage).order_by(m.OutboxMessage.id))
        ).all()
        assert [(q.method, q.chat_id, q.status) for q in queued] == [
            ("sendMessage", STAFF, "pending"),
            ("sendPhoto", STAFF, "pending"),
        ]
        assert queued[0].not_before >= datetime.now(UTC) + timedelta(seconds=30)
        for row in queued:  # time passes
            row.not_before = datetime.now(UTC) - timedelta(seconds=1)
    await OutboxSender(driver.gateway, driver.bot, owner="test").drain(budget=10)
    text, photo = [c for c in driver.fake.sent(STAFF)][-2:]
    assert (text.text, text["message_thread_id"]) == (
        "👤 <b>Customer</b> · ticket #1:\nGroup is busy",
        100,
    )
    assert (photo["photo"], photo["message_thread_id"]) == ("AgPhoto42", 100)
