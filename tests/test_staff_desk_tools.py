"""The staff desk's tools through the production dispatcher, on both billings (embedded and
WHMCS, the stand-in) where the billing takes part: the forum topic showing the ticket's status
and taker, a staff message after /close held until staff choose, staff edits relayed, /take,
/queue, canned answers, the rating under the close notice and a customer's Telegram reply to a
ticket's message. A plain group is asked once what it is and never gets createForumTopic."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import update

from keyboards.tickets import TicketCb, TicketRateCb
from services.billing import per_call
from services.contracts.tickets import TEXT_MAX, Ticket
from services.embedded import models as m
from services.whmcs.ticket_texts import META_KIND
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, User
from tests.harness.whmcs import WhmcsStandIn
from tests.test_tickets_handlers import STAFF, open_ticket, sends, staff_forum, staff_plain_group
from tests.whmcs_fixtures import linked_account

ANNA = User(id=7001, first_name="Anna")  # an administrator of the group; WHMCS admin "anna"
ADMIN = User(id=9001, first_name="Boss")  # ADMIN_IDS; WHMCS admin "admin"
STRANGER = User(id=88, first_name="Eve")
STARS = ["⭐1", "⭐2", "⭐3", "⭐4", "⭐5"]
STAFF_ONLY = "⛔ Only support staff can use this command."
ADMINS_ONLY = "⛔ Only administrators can use this command."
NOT_FOUND = "Not found. It may have been removed, or it is not yours."
NOT_UNDERSTOOD = "I did not understand that. Use the menu below or /help for the list of commands."


@dataclass
class Desk:
    """The driver in front of one billing, with what the scenarios need of it."""

    kind: str
    driver: BotDriver
    whmcs: WhmcsStandIn | None = None

    async def customer(self, telegram_id: int) -> tuple[User, int]:
        """A Telegram user with an account (linked to a WHMCS client on WHMCS)."""
        user = self.driver.user(telegram_id)
        if self.whmcs is None:
            billing = per_call(self.driver.gateway)
            account, _ = await billing.get_or_create_account(telegram_id, telegram_id, name="C")
            return user, account.id
        client = self.whmcs.add_client("Alice", f"N{telegram_id}", f"c{telegram_id}@example.com")
        account = await linked_account(self.driver.gateway, telegram_id, client)
        return user, account.id

    async def new_ticket(self, user: User, account_id: int, subject: str) -> Ticket:
        await open_ticket(self.driver, user, subject=subject, text="It is down")
        tickets = (await per_call(self.driver.gateway).list_tickets(account_id, 0, 10)).items
        return max(tickets, key=lambda t: t.id)

    async def ticket(self, ticket_id: int) -> Ticket:
        return await per_call(self.driver.gateway).staff_get_ticket(ticket_id)

    async def thread(self, ticket_id: int) -> list[tuple[str, str]]:
        messages = await per_call(self.driver.gateway).staff_ticket_messages(ticket_id)
        return [(x.author, x.text) for x in messages if x.author != "system"]

    async def closed_days_ago(self, ticket_id: int, days: int) -> None:
        when = datetime.now(UTC) - timedelta(days=days)
        if self.whmcs is None:
            async with self.driver.gateway.transaction() as billing:
                await billing.session.execute(
                    update(m.Ticket).where(m.Ticket.id == ticket_id).values(closed_at=when)
                )
            return
        store = per_call(self.driver.gateway.local)
        meta = await store.get_adapter_state(META_KIND, str(ticket_id)) or {}
        await store.put_adapter_state(
            META_KIND, str(ticket_id), meta | {"closed_at": when.isoformat()}
        )


@pytest.fixture(params=["embedded", "whmcs"])
def desk(request: pytest.FixtureRequest) -> Iterator[Desk]:
    if request.param == "embedded":
        yield Desk("embedded", request.getfixturevalue("driver"))
    else:
        whmcs: WhmcsStandIn = request.getfixturevalue("whmcs")
        yield Desk("whmcs", request.getfixturevalue("whmcs_driver"), whmcs)


@pytest.fixture
def embedded(driver: BotDriver) -> Desk:
    return Desk("embedded", driver)


async def forum_ticket(desk: Desk, subject: str = "Server down") -> tuple[User, Ticket, int]:
    """A ticket in the forum staff group: its customer, the ticket and its topic."""
    staff_forum(desk.driver)
    desk.driver.fake.set_member(STAFF, ANNA.id, "administrator")
    user, account_id = await desk.customer(501)
    ticket = await desk.new_ticket(user, account_id, subject)
    [thread_id] = [k[1] for k in desk.driver.fake.topics if k[0] == STAFF]
    return user, ticket, thread_id


def shown(calls: list[Call]) -> list[tuple[str, Any, Any]]:
    """Each call as (method, chat, what it says): the text, a topic's name or thread."""
    said = {
        "editForumTopic": lambda c: c["name"],
        "closeForumTopic": lambda c: c["message_thread_id"],
        "reopenForumTopic": lambda c: c["message_thread_id"],
        "answerCallbackQuery": lambda c: c.get("text"),
        "editMessageReplyMarkup": lambda c: tuple(c.button_texts()),
        "getChatMember": lambda c: c["user_id"],
    }
    return [
        (c.method, c.get("chat_id"), said.get(c.method, lambda c: c.text)(c))
        for c in calls
        if c.error is None
    ]


def answer(ticket: Ticket, text: str) -> str:
    return f"💬 <b>Support</b> answered in ticket #{ticket.id} «{ticket.subject}»:\n\n{text}"


def close_notice(ticket: Ticket) -> str:
    return (
        f"✅ Support closed your ticket #{ticket.id} «{ticket.subject}».\n"
        "If the problem is not solved, reply within 7 days to reopen it."
    )


# ---- the topic shows the status and who took the ticket -----------------------------------------
async def test_the_topic_title_shows_status_and_taker_and_closes_with_the_ticket(
    desk: Desk,
) -> None:
    driver = desk.driver
    customer, ticket, thread = await forum_ticket(desk)
    n = ticket.id
    [topic] = driver.fake.calls_of("createForumTopic")
    assert topic["name"] == f"🔴 #{n} Server down"

    calls = await driver.send(ANNA, "/take", chat=staff_forum(driver), thread_id=thread)
    assert shown(calls) == [
        ("getChatMember", STAFF, ANNA.id),
        ("editForumTopic", STAFF, f"🔴 #{n} Server down · Anna"),
        ("sendMessage", STAFF, f"🙋 Anna took ticket #{n}."),
    ]
    calls = await driver.send(ANNA, "Rebooted", chat=staff_forum(driver), thread_id=thread)
    assert shown(calls) == [
        ("sendMessage", customer.id, answer(ticket, "Rebooted")),
        ("editForumTopic", STAFF, f"🔵 #{n} Server down · Anna"),
    ]
    calls = await driver.send(ANNA, "/close", chat=staff_forum(driver), thread_id=thread)
    assert shown(calls) == [
        ("sendMessage", customer.id, close_notice(ticket)),
        ("editForumTopic", STAFF, f"⚪ #{n} Server down · Anna"),
        ("closeForumTopic", STAFF, thread),
        ("sendMessage", STAFF, f"✅ Ticket #{n} is closed.\nThe customer was notified."),
    ]
    assert driver.fake.closed_topics == {(STAFF, thread)}
    calls = await driver.send(ANNA, "/reopen", chat=staff_forum(driver), thread_id=thread)
    assert shown(calls) == [
        ("sendMessage", customer.id, f"🔄 Support reopened your ticket #{n} «Server down»."),
        ("editForumTopic", STAFF, f"🔴 #{n} Server down · Anna"),
        ("reopenForumTopic", STAFF, thread),
        ("sendMessage", STAFF, f"🔄 Ticket #{n} is open again."),
    ]
    assert driver.fake.closed_topics == set()
    assert driver.fake.topics[(STAFF, thread)] == f"🔴 #{n} Server down · Anna"

    # Another staff member takes it over; the customer's own close closes the topic too.
    driver.fake.set_member(STAFF, 7002, "creator")
    calls = await driver.send(
        User(7002, "Ben"), "/take", chat=staff_forum(driver), thread_id=thread
    )
    assert shown(calls)[1:] == [
        ("editForumTopic", STAFF, f"🔴 #{n} Server down · Ben"),
        ("sendMessage", STAFF, f"🙋 Ben took ticket #{n}."),
    ]
    menu = (await driver.send(customer, "/menu"))[-1]
    await driver.press(customer, menu, TicketCb(action="close", ticket_id=n).pack())
    assert driver.fake.closed_topics == {(STAFF, thread)}
    assert driver.fake.topics[(STAFF, thread)] == f"⚪ #{n} Server down · Ben"


async def test_a_plain_group_is_asked_once_what_it_is_and_gets_no_topics(
    embedded: Desk,
) -> None:
    driver = embedded.driver
    group = staff_plain_group(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    first, first_account = await embedded.customer(501)
    second, second_account = await embedded.customer(502)
    one = await embedded.new_ticket(first, first_account, "First")
    two = await embedded.new_ticket(second, second_account, "Second")
    assert [c["chat_id"] for c in driver.fake.calls_of("getChat")] == [STAFF]  # kept
    assert driver.fake.calls_of("createForumTopic") == []
    headers = [c for c in driver.fake.sent(STAFF) if c.text and c.text.startswith("🎫")]
    assert [(str(c.text).split("\n")[0], c.get("message_thread_id")) for c in headers] == [
        (f"🎫 <b>Ticket #{one.id}</b> · First", None),
        (f"🎫 <b>Ticket #{two.id}</b> · Second", None),
    ]
    # Answers by reply and /close change no topic: there are none.
    calls = await driver.send(ANNA, "On it", chat=group, reply_to=headers[1].result)
    assert [c.method for c in calls] == ["getChatMember", "sendMessage"]
    calls = await driver.send(ANNA, "/close", chat=group, reply_to=headers[1].result)
    assert [(c.method, c["chat_id"]) for c in calls] == [
        ("sendMessage", second.id),
        ("sendMessage", STAFF),
    ]


# ---- a staff message in a closed ticket ----------------------------------------------------------
async def test_a_staff_message_after_close_is_held_until_staff_choose(desk: Desk) -> None:
    driver = desk.driver
    customer, ticket, thread = await forum_ticket(desk)
    group = staff_forum(driver)
    await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    calls = await driver.send(ANNA, "One more <thing>", chat=group, thread_id=thread)
    [prompt] = calls
    assert (prompt["chat_id"], prompt["message_thread_id"], prompt.text) == (
        STAFF,
        thread,
        f"⚠️ Ticket #{ticket.id} is closed, so this message was <b>not sent</b> to the "
        "customer. Reopen the ticket and send it, or keep it as an internal note?",
    )
    assert prompt.button_texts() == ["🔄 Reopen and send", "📝 Save as a note"]
    assert (await desk.ticket(ticket.id)).status == "closed"

    calls = await driver.click(STRANGER, prompt, "Save as a note")
    assert shown(calls) == [
        ("getChatMember", STAFF, STRANGER.id),
        ("answerCallbackQuery", None, STAFF_ONLY),
    ]
    calls = await driver.click(ANNA, prompt, "Save as a note")
    assert shown(calls) == [
        ("answerCallbackQuery", None, None),
        (
            "editMessageText",
            STAFF,
            f"📝 Saved as an internal note of ticket #{ticket.id}. The ticket stays closed; the "
            "customer does not see the note.",
        ),
    ]
    calls = await driver.click(ANNA, prompt, "Reopen and send")  # the old buttons once more
    assert shown(calls) == [("answerCallbackQuery", None, "This message was handled already.")]
    assert (await desk.ticket(ticket.id)).status == "closed"
    # WHMCS posts a note as the API user: the staff member's name leads its text.
    note = {"embedded": "One more <thing>", "whmcs": "Anna: One more <thing>"}[desk.kind]
    assert (await desk.thread(ticket.id))[-1] == ("note", note)

    [prompt] = await driver.send(ANNA, "Still there?", chat=group, thread_id=thread)
    calls = await driver.click(ANNA, prompt, "Reopen and send")
    assert shown(calls) == [
        ("sendMessage", customer.id, answer(ticket, "Still there?")),
        ("editForumTopic", STAFF, f"🔵 #{ticket.id} Server down"),
        ("reopenForumTopic", STAFF, thread),
        ("answerCallbackQuery", None, None),
        (
            "editMessageText",
            STAFF,
            f"🔄 Ticket #{ticket.id} is open again and the message was sent to the customer.",
        ),
    ]
    assert (await desk.ticket(ticket.id)).status == "answered"
    assert (await desk.thread(ticket.id))[-1] == ("staff", "Still there?")


# ---- staff edits ---------------------------------------------------------------------------------
def edited(driver: BotDriver, message: dict[str, Any], **content: Any) -> dict[str, Any]:
    """The edited_message update Telegram sends when its author edits `message`."""
    changed = {**message, **content, "edit_date": message["date"] + 60}
    driver.fake.messages[(message["chat"]["id"], message["message_id"])] = changed
    return driver.fake._update(edited_message=changed)


async def test_a_staff_edit_changes_the_customers_copy(embedded: Desk) -> None:
    driver = embedded.driver
    customer, ticket, thread = await forum_ticket(embedded)
    group = staff_forum(driver)
    update = driver.fake.user_message(ANNA, "Reboot <now>", chat=group, thread_id=thread)
    calls = await driver.feed(update)
    push = calls[1]
    source = update["message"]

    calls = await driver.feed(edited(driver, source, text="Reboot at 10:00"))
    assert shown(calls) == [("editMessageText", customer.id, answer(ticket, "Reboot at 10:00"))]
    assert calls[0]["message_id"] == push.result["message_id"]
    assert calls[0].button_texts() == ["✍️ Reply", "📄 Open ticket"]
    assert driver.screen(customer.id)["text"] == answer(ticket, "Reboot at 10:00")
    # The ticket keeps what was sent first.
    assert (await embedded.thread(ticket.id))[-1] == ("staff", "Reboot <now>")

    # A photo's caption; too long an edit is refused and the copy stays.
    update = driver.fake.user_message(
        ANNA, chat=group, thread_id=thread, photo="AgADshot", caption="see"
    )
    photo = (await driver.feed(update))[0]
    calls = await driver.feed(edited(driver, update["message"], caption="see the red line"))
    assert shown(calls) == [("editMessageCaption", customer.id, answer(ticket, "see the red line"))]
    assert calls[0]["message_id"] == photo.result["message_id"]
    calls = await driver.feed(edited(driver, source, text="x" * (TEXT_MAX + 1)))
    assert shown(calls) == [
        (
            "sendMessage",
            STAFF,
            f"Too long: at most {TEXT_MAX} characters reach the customer. The customer's copy "
            "is unchanged.",
        )
    ]
    # Edits of messages that reached no customer change nothing.
    note = driver.fake.user_message(ANNA, "/note internal", chat=group, thread_id=thread)
    await driver.feed(note)
    assert await driver.feed(edited(driver, note["message"], text="/note changed")) == []
    chatter = driver.fake.user_message(ANNA, "coffee?", chat=group)
    await driver.feed(chatter)
    assert await driver.feed(edited(driver, chatter["message"], text="tea?")) == []


# ---- /queue -------------------------------------------------------------------------------------
async def test_the_queue_lists_tickets_not_closed_oldest_first(desk: Desk) -> None:
    driver = desk.driver
    group = staff_forum(driver)
    driver.fake.set_member(STAFF, ANNA.id, "administrator")
    calls = await driver.send(ANNA, "/queue", chat=group)
    assert [c.text for c in sends(calls, STAFF)] == [
        "📭 The queue is empty: every ticket is closed."
    ]
    tickets = []
    for telegram_id, subject in ((501, "Disk full"), (502, "No <mail>"), (503, "Slow site")):
        user, account_id = await desk.customer(telegram_id)
        tickets.append(await desk.new_ticket(user, account_id, subject))
    disk, mail, site = tickets
    threads = {t.id: k[1] for t, k in zip(tickets, sorted(driver.fake.topics), strict=True)}
    await driver.send(ANNA, "/take", chat=group, thread_id=threads[mail.id])
    await driver.send(ANNA, "Cleaned up", chat=group, thread_id=threads[disk.id])
    await driver.send(ANNA, "/close", chat=group, thread_id=threads[site.id])
    calls = await driver.send(ANNA, "/queue", chat=group, thread_id=threads[site.id])
    assert [c.text for c in sends(calls, STAFF)] == [
        "📋 <b>Queue</b> (oldest first):\n"
        f"🔴 #{mail.id} No &lt;mail&gt; · Anna\n"
        f"🔵 #{disk.id} Disk full\n"
        "🔴 waiting for support · 🔵 waiting for the customer"
    ]
    calls = await driver.send(STRANGER, "/queue", chat=group)
    assert [c.text for c in sends(calls, STAFF)] == [STAFF_ONLY]


# ---- canned answers -----------------------------------------------------------------------------
async def test_canned_answers_are_managed_by_admins_and_sent_by_staff(embedded: Desk) -> None:
    driver = embedded.driver
    customer, ticket, thread = await forum_ticket(embedded)
    group = staff_forum(driver)

    async def say(user: User, text: str, **where: Any) -> list[str]:
        calls = await driver.send(user, text, chat=group, **where)
        return [str(c.text) for c in sends(calls, STAFF)]

    assert await say(ANNA, "/canned") == [
        "No canned answers yet. Admins add them with /canned add &lt;name&gt; &lt;text&gt;."
    ]
    assert await say(ANNA, "/canned add hi Hello") == [ADMINS_ONLY]
    assert await say(ADMIN, "/canned add Hi Hello <there>, how can we help?") == [
        "✅ Canned answer «hi» added."
    ]
    assert await say(ADMIN, "/canned add hi Hello <there>, how can I help?") == [
        "✅ Canned answer «hi» replaced."
    ]
    assert await say(ADMIN, "/canned add bye Bye") == ["✅ Canned answer «bye» added."]
    usage = (
        "Usage: /canned add &lt;name&gt; &lt;text&gt; (the name: up to 32 latin letters, "
        "digits, - and _)"
    )
    assert await say(ADMIN, "/canned add bad!name text") == [usage]
    assert await say(ADMIN, "/canned add lonely") == [usage]
    assert await say(ANNA, "/canned") == [
        "📎 <b>Canned answers</b> (send one with /canned &lt;name&gt; in a ticket):\n"
        "• <code>bye</code> — Bye\n"
        "• <code>hi</code> — Hello &lt;there&gt;, how can I help?"
    ]

    calls = await driver.send(ANNA, "/canned hi", chat=group, thread_id=thread)
    assert shown(calls) == [
        ("sendMessage", customer.id, answer(ticket, "Hello &lt;there&gt;, how can I help?")),
        ("editForumTopic", STAFF, f"🔵 #{ticket.id} Server down"),
        ("sendMessage", STAFF, "📎 Canned answer «hi» sent to the customer."),
    ]
    assert (await embedded.thread(ticket.id))[-1] == ("staff", "Hello <there>, how can I help?")
    assert await say(ANNA, "/canned nope", thread_id=thread) == [
        "There is no canned answer «nope». /canned lists them."
    ]
    assert await say(ANNA, "/canned hi") == [
        "Use this command inside a ticket's topic, or as a reply to a message of the ticket."
    ]
    assert await say(STRANGER, "/canned hi", thread_id=thread) == [STAFF_ONLY]

    assert await say(ANNA, "/canned del hi") == [ADMINS_ONLY]
    assert await say(ADMIN, "/canned del hi") == ["🗑 Canned answer «hi» deleted."]
    assert await say(ADMIN, "/canned del hi") == ["There is no canned answer «hi»."]
    assert await say(ANNA, "/canned") == [
        "📎 <b>Canned answers</b> (send one with /canned &lt;name&gt; in a ticket):\n"
        "• <code>bye</code> — Bye"
    ]
    await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    assert await say(ANNA, "/canned bye", thread_id=thread) == [
        f"Ticket #{ticket.id} is closed: /reopen it first, then send the answer."
    ]


async def test_staff_commands_in_a_private_chat_get_the_staff_only_answer(
    embedded: Desk,
) -> None:
    driver = embedded.driver
    customer, _account = await embedded.customer(501)
    driver.user(ADMIN.id)
    for user in (customer, ADMIN):
        for command in ("/take", "/queue", "/canned", "/canned add hi Hello", "/refund st-1"):
            calls = await driver.send(user, command)
            assert [(c["chat_id"], c.text) for c in calls] == [
                (user.id, "This command is for support staff and works only in the staff group.")
            ], command


# ---- the rating ----------------------------------------------------------------------------------
async def test_the_customer_rates_a_closed_ticket_once_and_staff_see_it(desk: Desk) -> None:
    driver = desk.driver
    customer, ticket, thread = await forum_ticket(desk)
    group = staff_forum(driver)
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    [notice] = sends(calls, customer.id)
    assert notice.button_texts() == [*STARS, "📄 Open ticket", "⬅️ Main menu"]

    # Another customer cannot rate it, even with forged button data.
    other, _account = await desk.customer(502)
    menu = (await driver.send(other, "/menu"))[-1]
    forged = TicketRateCb(ticket_id=ticket.id, rating=1).pack()
    assert shown(await driver.press(other, menu, forged)) == [
        ("answerCallbackQuery", None, NOT_FOUND)
    ]

    calls = await driver.click(customer, notice, "⭐4")
    assert shown(calls) == [
        ("answerCallbackQuery", None, "Thank you for your rating!"),
        ("editMessageReplyMarkup", customer.id, ("📄 Open ticket", "⬅️ Main menu")),
        ("sendMessage", STAFF, f"⭐ The customer rated ticket #{ticket.id}: 4 of 5 ⭐⭐⭐⭐"),
    ]
    assert calls[-1]["message_thread_id"] == thread
    calls = await driver.press(customer, notice, TicketRateCb(ticket_id=ticket.id, rating=1).pack())
    assert shown(calls) == [
        ("answerCallbackQuery", None, "You have rated this ticket already. Thank you!")
    ]
    assert await per_call(driver.gateway).ticket_rating(ticket.id) == 4

    # Closed again later: the rating is not asked twice.
    await driver.send(ANNA, "/reopen", chat=group, thread_id=thread)
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    [notice] = sends(calls, customer.id)
    assert notice.button_texts() == ["📄 Open ticket", "⬅️ Main menu"]


# ---- a Telegram reply to a ticket's message ------------------------------------------------------
async def test_a_telegram_reply_to_a_ticket_message_goes_into_that_ticket(desk: Desk) -> None:
    driver = desk.driver
    customer, ticket, thread = await forum_ticket(desk)
    group = staff_forum(driver)
    n = ticket.id
    calls = await driver.send(ANNA, "Please reboot", chat=group, thread_id=thread)
    [push] = sends(calls, customer.id)

    calls = await driver.send(customer, "Rebooted, still down", reply_to=push.result)
    assert shown(calls) == [
        ("editForumTopic", STAFF, f"🔴 #{n} Server down"),
        ("sendMessage", STAFF, f"👤 <b>Customer</b> · ticket #{n}:\nRebooted, still down"),
        ("sendMessage", customer.id, f"✅ Your reply is added to ticket #{n}."),
    ]
    assert (await desk.thread(n))[-1] == ("customer", "Rebooted, still down")

    # A reply to the close notice within the window reopens the ticket, with a photo too.
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    [notice] = sends(calls, customer.id)
    calls = await driver.send(
        customer, reply_to=notice.result, photo="AgADstill", caption="Down again"
    )
    assert shown(calls) == [
        ("editForumTopic", STAFF, f"🔴 #{n} Server down"),
        ("reopenForumTopic", STAFF, thread),
        ("sendPhoto", STAFF, f"👤 <b>Customer</b> · ticket #{n}:\nDown again"),
        ("sendMessage", customer.id, f"✅ Your reply is added to ticket #{n}."),
    ]
    assert (await desk.ticket(n)).status != "closed"

    # After the window: it is closed for good; a new ticket is offered instead.
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    [notice] = sends(calls, customer.id)
    await desk.closed_days_ago(n, 8)
    calls = await driver.send(customer, "Hello?", reply_to=notice.result)
    assert shown(calls) == [
        (
            "sendMessage",
            customer.id,
            "This ticket was closed more than 7 days ago and cannot be reopened. Please open a "
            "new ticket: /newticket",
        )
    ]
    assert calls[0].button_texts() == ["✏️ New ticket", "⬅️ Main menu"]
    assert (await desk.ticket(n)).status == "closed"
    assert (await desk.thread(n))[-1] == ("customer", "Down again")

    # A reply to any other message of the bot is not a ticket's.
    menu = (await driver.send(customer, "/menu"))[-1]
    calls = await driver.send(customer, "Hello?", reply_to=menu.result)
    assert [c.text for c in calls] == [NOT_UNDERSTOOD]


async def test_a_held_message_the_customer_overtook_or_without_text(embedded: Desk) -> None:
    driver = embedded.driver
    customer, ticket, thread = await forum_ticket(embedded)
    group = staff_forum(driver)
    await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    # A photo without a caption cannot be a note.
    [prompt] = await driver.send(ANNA, chat=group, thread_id=thread, photo="AgADscreen")
    calls = await driver.click(ANNA, prompt, "Save as a note")
    assert shown(calls) == [("answerCallbackQuery", None, "Only text can be kept as a note.")]
    # The customer reopened the ticket meanwhile: the photo is simply sent.
    menu = (await driver.send(customer, "/menu"))[-1]
    await driver.press(customer, menu, TicketCb(action="reopen", ticket_id=ticket.id).pack())
    calls = await driver.click(ANNA, prompt, "Reopen and send")
    assert [(c.method, c["chat_id"]) for c in calls if c.method.startswith("send")] == [
        ("sendPhoto", customer.id)
    ]
    assert shown(calls)[-1] == (
        "editMessageText",
        STAFF,
        f"The message was sent to the customer (ticket #{ticket.id}).",
    )


async def test_a_topic_change_telegram_refused_is_tried_again_with_the_next_change(
    embedded: Desk,
) -> None:
    driver = embedded.driver
    _customer, ticket, thread = await forum_ticket(embedded)
    group = staff_forum(driver)
    n = ticket.id
    driver.fake.fail_next("editForumTopic", 400, "Bad Request: CHAT_ADMIN_REQUIRED")
    calls = await driver.send(ANNA, "/take", chat=group, thread_id=thread)
    assert [c.text for c in sends(calls, STAFF)] == [f"🙋 Anna took ticket #{n}."]
    assert driver.fake.topics[(STAFF, thread)] == f"🔴 #{n} Server down"
    calls = await driver.send(ANNA, "Looking", chat=group, thread_id=thread)
    assert [(c.method, c.get("name")) for c in calls if c.method.endswith("ForumTopic")] == [
        ("editForumTopic", f"🔵 #{n} Server down · Anna")
    ]
    # Telegram says the topic is closed already (a person closed it): that is what was wanted.
    driver.fake.fail_next("closeForumTopic", 400, "Bad Request: TOPIC_NOT_MODIFIED")
    await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    calls = await driver.send(ANNA, "/close", chat=group, thread_id=thread)
    assert [c.method for c in calls if c.method.endswith("ForumTopic")] == []
    driver.fake.closed_topics.add((STAFF, thread))
    calls = await driver.send(ANNA, "/reopen", chat=group, thread_id=thread)
    assert [c.method for c in calls if c.method.endswith("ForumTopic")] == [
        "editForumTopic",
        "reopenForumTopic",
    ]
    assert driver.fake.closed_topics == set()


async def test_a_customer_copy_that_cannot_be_edited_is_reported(embedded: Desk) -> None:
    driver = embedded.driver
    customer, _ticket, thread = await forum_ticket(embedded)
    update = driver.fake.user_message(ANNA, "Reboot", chat=staff_forum(driver), thread_id=thread)
    push = (await driver.feed(update))[1]
    del driver.fake.messages[(customer.id, push.result["message_id"])]  # the customer deleted it
    calls = await driver.feed(edited(driver, update["message"], text="Reboot twice"))
    assert shown(calls) == [
        (
            "sendMessage",
            STAFF,
            "⚠️ The customer's copy could not be changed: Bad Request: message to edit not found",
        )
    ]
