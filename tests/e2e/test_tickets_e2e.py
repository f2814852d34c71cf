"""The real process: a customer opens a ticket → a forum topic appears in the staff group →
staff answer in it → the customer receives the answer and replies → it lands in the topic."""

from __future__ import annotations

from tests.e2e.conftest import LiveBot
from tests.harness.telegram import Chat, User

STAFF = -100500


async def test_ticket_round_trip_through_a_forum_topic(live_bot: LiveBot) -> None:
    fake = live_bot.fake
    group = fake.add_chat(Chat(id=STAFF, type="supergroup", title="Support", is_forum=True))
    staff = User(id=77, first_name="Anna")
    fake.set_member(STAFF, staff.id, "administrator")
    customer = live_bot.user(721)

    start = await live_bot.send(customer, "/newticket")
    menu = await live_bot.reply(
        lambda c: c.method == "sendMessage" and c["chat_id"] == 721 and "New ticket" in c.text,
        start,
    )
    start = await live_bot.press(customer, menu, "Technical support")
    await live_bot.reply(lambda c: c.method == "editMessageText" and "subject" in c.text, start)
    start = await live_bot.send(customer, "Server is down")
    await live_bot.reply(lambda c: c.method == "sendMessage" and "Describe" in c.text, start)
    start = await live_bot.send(customer, "No ping since 10:00")
    draft = await live_bot.reply(lambda c: c.method == "sendMessage" and "Draft" in c.text, start)
    start = await live_bot.press(customer, draft, "Create ticket")

    topic = await live_bot.reply(lambda c: c.method == "createForumTopic", start)
    assert (topic["chat_id"], topic["name"]) == (STAFF, "🔴 #1 Server is down")
    thread_id = topic.result["message_thread_id"]
    header = await live_bot.reply(
        lambda c: c.method == "sendMessage" and c["chat_id"] == STAFF, start
    )
    assert header["message_thread_id"] == thread_id
    assert header.text.startswith("🎫 <b>Ticket #1</b> · Server is down\n")
    assert header.text.endswith("\n\nNo ping since 10:00")
    done = await live_bot.reply(lambda c: c.method == "editMessageText" and "#1" in c.text, start)
    assert done.text == "✅ Ticket #1 is created. Support will answer here, in this chat."

    start = await live_bot.send(staff, "Rebooted it, please check", chat=group, thread_id=thread_id)
    answer = await live_bot.reply(
        lambda c: c.method == "sendMessage" and c["chat_id"] == 721, start
    )
    assert answer.text == (
        "💬 <b>Support</b> answered in ticket #1 «Server is down»:\n\nRebooted it, please check"
    )
    assert answer.button_texts() == ["✍️ Reply", "📄 Open ticket"]

    start = await live_bot.press(customer, answer, "Reply")
    await live_bot.reply(
        lambda c: c.method == "sendMessage" and "Write your reply" in c.text, start
    )
    start = await live_bot.send(customer, "Works now, thanks!")
    relay = await live_bot.reply(
        lambda c: c.method == "sendMessage" and c["chat_id"] == STAFF, start
    )
    assert (relay.text, relay["message_thread_id"]) == (
        "👤 <b>Customer</b> · ticket #1:\nWorks now, thanks!",
        thread_id,
    )
