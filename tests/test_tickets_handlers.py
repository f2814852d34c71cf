"""Tickets, the customer's side, through the dispatcher: the new-ticket dialog (each step,
cancel, limits, files), the list, the conversation, reply, close and reopen, prefilled tickets,
and forged ticket ids. The staff group (-1001, a forum here) receives what customers write."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

from babel.dates import format_datetime
from sqlalchemy import select

from keyboards.callbacks import NewTicketCb
from keyboards.tickets import TicketCb
from services.embedded import models as m
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call, Chat, User

STAFF = -1001
NOT_FOUND = "Not found. It may have been removed, or it is not yours."
CANCELLED = "Cancelled. Nothing was changed."
STALE = "This button is out of date. Please open the menu again: /menu"

LABELS = {
    "en": {"create": "Create ticket", "tech": "Technical support", "billing": "Billing"},
    "ru": {
        "create": "Создать обращение",
        "tech": "Техническая поддержка",
        "billing": "Бухгалтерия",
    },
}


def staff_forum(driver: BotDriver) -> Chat:
    return driver.fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff", is_forum=True))


def staff_plain_group(driver: BotDriver) -> Chat:
    return driver.fake.add_chat(Chat(id=STAFF, type="supergroup", title="Staff"))


def when(value: datetime, lang: str = "en") -> str:
    return format_datetime(value, format="short", locale=lang)


def sends(calls: list[Call], chat_id: int) -> list[Call]:
    return [
        c
        for c in calls
        if c.error is None
        and c.method in ("sendMessage", "sendPhoto", "sendDocument", "editMessageText")
        and c.params.get("chat_id") == chat_id
    ]


async def open_ticket(
    driver: BotDriver,
    user: User,
    *,
    subject: str = "Invoice question",
    text: str | None = "Wrong amount",
    photo: str | None = None,
    department: str = "billing",
    lang: str = "en",
) -> list[Call]:
    """The whole dialog; returns the calls of pressing «Create ticket»."""
    calls = await driver.send(user, "/newticket")
    await driver.click(user, calls[-1], LABELS[lang][department])
    await driver.send(user, subject)
    draft = None
    if text is not None:
        draft = (await driver.send(user, text))[-1]
    if photo is not None:
        draft = (await driver.send(user, photo=photo))[-1]
    assert draft is not None
    return await driver.click(user, draft, LABELS[lang]["create"])


async def tickets_in_db(driver: BotDriver) -> list[m.Ticket]:
    async with driver.gateway.transaction() as billing:
        return list((await billing.session.scalars(select(m.Ticket).order_by(m.Ticket.id))).all())


async def place_in_db(driver: BotDriver, ticket_id: int) -> m.TicketPlace | None:
    """Where the bot store keeps the ticket in the staff group (and its reminders)."""
    async with driver.gateway.transaction() as billing:
        return await billing.session.get(m.TicketPlace, ticket_id)


async def test_new_ticket_dialog_step_by_step_with_files(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(501)

    calls = await driver.send(user, "/newticket")
    assert calls[-1].text == "✏️ <b>New ticket</b>\n\nChoose the department:"
    assert calls[-1].button_texts() == ["Technical support", "Billing", "Abuse", "✖️ Cancel"]

    calls = await driver.click(user, calls[-1], "Billing")
    edit = next(c for c in calls if c.method == "editMessageText")
    assert edit.text == (
        "✏️ <b>New ticket</b>\nDepartment: Billing\n\nEnter the subject (3–100 characters):"
    )
    assert edit.button_texts() == ["✖️ Cancel"]

    for bad in ("ab", "x" * 101, "  a   "):
        calls = await driver.send(user, bad)
        assert [c.text for c in calls] == [
            "The subject must be 3 to 100 characters long. Please try again:"
        ]
    calls = await driver.send(user, "Invoice  <question>")
    assert calls[-1].text == (
        "✏️ <b>New ticket</b>\nDepartment: Billing\nSubject: Invoice &lt;question&gt;\n\n"
        "Describe the problem. You can attach photos and documents."
    )

    calls = await driver.send(user, photo="AgADphoto1")
    assert calls[-1].text == (
        "📝 <b>Draft</b>\nDepartment: Billing\nSubject: Invoice &lt;question&gt;\nFiles: 1\n\n—"
        "\n\nSend more text, photos or documents to add them, or create the ticket."
    )
    assert calls[-1].button_texts() == ["✅ Create ticket", "✖️ Cancel"]
    calls = await driver.send(user, "The amount is <wrong>")
    assert "Files: 1\n\nThe amount is &lt;wrong&gt;\n\n" in calls[-1].text
    calls = await driver.send(user, document="BQADdoc1", caption="invoice scan")
    assert "Files: 2\n\nThe amount is &lt;wrong&gt;\n\ninvoice scan\n\n" in calls[-1].text
    assert driver.fake.sent(STAFF) == []  # nothing reaches the staff before «Create»

    calls = await driver.click(user, calls[-1], "Create ticket")
    topic = next(c for c in calls if c.method == "createForumTopic")
    assert (topic["chat_id"], topic["name"]) == (STAFF, "🔴 #1 Invoice <question>")
    staff = sends(calls, STAFF)
    assert [(c.method, c.get("message_thread_id")) for c in staff] == [
        ("sendMessage", 100),
        ("sendPhoto", 100),
        ("sendDocument", 100),
    ]
    assert staff[0].text == (
        "🎫 <b>Ticket #1</b> · Invoice &lt;question&gt;\nDepartment: Billing\n"
        "Customer: Test (Telegram id 501)\nAccount: #1 <code>tg501</code>\n"
        "Balance: €0.00 · Active orders: 0\nUnpaid invoices: none · Last payment: none\n\n"
        "The amount is &lt;wrong&gt;\n\ninvoice scan\n📎 2 files"
    )
    assert (staff[1]["photo"], staff[2]["document"]) == ("AgADphoto1", "BQADdoc1")
    done = next(c for c in calls if c.method == "editMessageText")
    assert (done["chat_id"], done.text) == (
        501,
        "✅ Ticket #1 is created. Support will answer here, in this chat.",
    )
    assert done.button_texts() == ["📄 Open ticket", "⬅️ Main menu"]

    [ticket] = await tickets_in_db(driver)
    assert (ticket.department, ticket.subject, ticket.status, ticket.language) == (
        "billing",
        "Invoice <question>",
        "open",
        "en",
    )
    place = await place_in_db(driver, ticket.id)
    assert place is not None and (place.chat_id, place.thread_id) == (STAFF, 100)
    async with driver.gateway.transaction() as billing:
        [first] = await billing.ticket_messages(1, 1)
        links = (await billing.session.scalars(select(m.StaffMessageLink))).all()
    assert first.text == "The amount is <wrong>\n\ninvoice scan"
    assert [(a.kind, a.file_id) for a in first.attachments] == [
        ("photo", "AgADphoto1"),
        ("document", "BQADdoc1"),
    ]
    assert sorted(link.message_id for link in links) == sorted(
        c.result["message_id"] for c in staff
    )


async def test_new_ticket_in_russian_and_header_for_staff_in_default_language(
    driver: BotDriver,
) -> None:
    staff_forum(driver)
    user = driver.user(502, language_code="ru")
    calls = await driver.send(user, "/newticket")
    assert calls[-1].text == "✏️ <b>Новое обращение</b>\n\nВыберите отдел:"
    assert calls[-1].button_texts() == [
        "Техническая поддержка",
        "Бухгалтерия",
        "Жалобы (abuse)",
        "✖️ Отмена",
    ]
    calls = await driver.click(user, calls[-1], "Техническая")
    assert calls[0].text == (
        "✏️ <b>Новое обращение</b>\nОтдел: Техническая поддержка\n\nВведите тему (3–100 символов):"
    )
    calls = await driver.send(user, "no")
    assert calls[-1].text == "Тема должна быть длиной от 3 до 100 символов. Попробуйте ещё раз:"
    calls = await driver.send(user, "Сервер не отвечает")
    assert calls[-1].text == (
        "✏️ <b>Новое обращение</b>\nОтдел: Техническая поддержка\nТема: Сервер не отвечает\n\n"
        "Опишите проблему. Можно приложить фото и документы."
    )
    calls = await driver.send(user, photo="AgADphotoRU", caption="Пинг не проходит")
    assert calls[-1].text == (
        "📝 <b>Черновик</b>\nОтдел: Техническая поддержка\nТема: Сервер не отвечает\n"
        "Файлов: 1\n\nПинг не проходит\n\nОтправьте ещё текст, фото или документы, чтобы "
        "добавить их, или создайте обращение."
    )
    assert calls[-1].button_texts() == ["✅ Создать обращение", "✖️ Отмена"]
    calls = await driver.click(user, calls[-1], "Создать обращение")
    assert calls[-2].text == "✅ Обращение #1 создано. Поддержка ответит здесь, в этом чате."
    assert calls[-2].button_texts() == ["📄 Открыть обращение", "⬅️ Главное меню"]
    # One file and a short text: the header is the photo's caption, in the staff's language.
    [header] = sends(calls, STAFF)
    assert (header.method, header["photo"], header["message_thread_id"]) == (
        "sendPhoto",
        "AgADphotoRU",
        100,
    )
    assert header.text == (
        "🎫 <b>Ticket #1</b> · Сервер не отвечает\nDepartment: Technical support\n"
        "Customer: Test (Telegram id 502)\nAccount: #1 <code>tg502</code>\n"
        "Balance: €0.00 · Active orders: 0\nUnpaid invoices: none · Last payment: none\n\n"
        "Пинг не проходит\n📎 1 file"
    )
    [ticket] = await tickets_in_db(driver)
    assert ticket.language == "ru"


async def test_cancel_at_every_step_saves_nothing(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(503)
    # /cancel at the department step
    await driver.send(user, "/newticket")
    calls = await driver.send(user, "/cancel")
    assert calls[0].text == CANCELLED
    # the Cancel button at the subject step
    calls = await driver.send(user, "/newticket")
    calls = await driver.click(user, calls[-1], "Technical support")
    calls = await driver.click(user, calls[0], "Cancel")
    edit = next(c for c in calls if c.method == "editMessageText")
    assert (edit.text, edit.button_texts()) == (CANCELLED, ["⬅️ Main menu"])
    # /cancel with a draft at the message step, then «Create» on the old draft is stale
    calls = await driver.send(user, "/newticket")
    await driver.click(user, calls[-1], "Technical support")
    await driver.send(user, "Some subject")
    draft = (await driver.send(user, "Some text"))[-1]
    calls = await driver.send(user, "/cancel")
    assert calls[0].text == CANCELLED
    assert calls[-1].text.startswith("💼 <b>Personal cabinet</b>")
    calls = await driver.click(user, draft, "Create ticket")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert (answer["text"], answer["show_alert"]) == (STALE, True)
    # after cancelling, text is no longer taken as a ticket message
    calls = await driver.send(user, "hello")
    assert calls[-1].text.startswith("I did not understand that.")
    assert await tickets_in_db(driver) == []
    assert driver.fake.sent(STAFF) == []


async def test_cancel_in_russian(driver: BotDriver) -> None:
    user = driver.user(504, language_code="ru")
    calls = await driver.send(user, "/newticket")
    calls = await driver.click(user, calls[-1], "Бухгалтерия")
    calls = await driver.click(user, calls[0], "Отмена")
    edit = next(c for c in calls if c.method == "editMessageText")
    assert (edit.text, edit.button_texts()) == ("Отменено. Ничего не изменено.", ["⬅️ Главное меню"])


async def test_message_limits_and_unsupported_content(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(505)
    calls = await driver.send(user, "/newticket")
    await driver.click(user, calls[-1], "Abuse")
    await driver.send(user, "Spam from your network")
    calls = await driver.send(user, "x" * 3001)
    assert [c.text for c in calls] == [
        "The message is too long: at most 3000 characters in all. Please send a shorter one."
    ]
    calls = await driver.send(
        user,
        extra={
            "sticker": {
                "file_id": "CAAsticker",
                "file_unique_id": "st1",
                "type": "regular",
                "width": 512,
                "height": 512,
                "is_animated": False,
                "is_video": False,
            }
        },
    )
    assert [c.text for c in calls] == ["Please send text, a photo or a document."]
    await driver.send(user, "a" * 2000)
    calls = await driver.send(user, "b" * 999)  # 2000 + 2 + 999 > 3000 in all
    assert [c.text for c in calls] == [
        "The message is too long: at most 3000 characters in all. Please send a shorter one."
    ]
    assert calls[0].button_texts() == ["✅ Create ticket", "✖️ Cancel"]  # the draft is kept
    for index in range(10):
        calls = await driver.send(user, photo=f"AgADp{index}")
    assert "Files: 10\n" in calls[-1].text
    calls = await driver.send(user, photo="AgADp10")
    assert [c.text for c in calls] == ["At most 10 files can be attached."]
    calls = await driver.click(user, driver.screen_call(505), "Create ticket")
    [ticket] = await tickets_in_db(driver)
    async with driver.gateway.transaction() as billing:
        [first] = await billing.ticket_messages(ticket.account_id, ticket.id)
    assert (len(first.text), len(first.attachments)) == (2000, 10)
    staff = sends(calls, STAFF)
    assert [c.method for c in staff] == ["sendMessage"] + ["sendPhoto"] * 10


async def test_list_view_pagination_and_forged_ids(driver: BotDriver) -> None:
    # More tickets than the per-customer limits allow (those: tests/test_user_limits.py).
    driver.gateway.config = replace(
        driver.gateway.config, max_open_tickets=0, max_tickets_per_hour=0
    )
    staff_forum(driver)
    user = driver.user(506)
    calls = await driver.send(user, "/tickets")
    assert calls[-1].text == (
        "💬 <b>Your tickets</b>\n\nYou have no tickets yet. Write to support if you need help."
    )
    assert calls[-1].button_texts() == ["✏️ New ticket", "⬅️ Main menu"]

    for index in range(6):
        await open_ticket(driver, user, subject=f"Question {index}", department="tech")
    await driver.press(user, driver.screen_call(506), TicketCb(action="close", ticket_id=1).pack())
    rows = await tickets_in_db(driver)
    calls = await driver.send(user, "/tickets")
    page = calls[-1]
    # Open ones first, newest activity first; the closed #1 comes last (on page 2).
    expected = [
        f"<b>#{t.id}</b> Question {t.id - 1}\nTechnical support · 🟢 Open\n"
        f"Last activity: {when(t.updated_at)}"
        for t in sorted(rows[1:], key=lambda t: (t.updated_at, t.id), reverse=True)[:5]
    ]
    assert page.text == "\n\n".join(["💬 <b>Your tickets</b> (page 1 of 2)", *expected])
    assert page.button_texts() == [
        "#6 Question 5",
        "#5 Question 4",
        "#4 Question 3",
        "#3 Question 2",
        "#2 Question 1",
        "▶️",
        "✏️ New ticket",
        "⬅️ Main menu",
    ]
    calls = await driver.click(user, page, "▶️")
    second = next(c for c in calls if c.method == "editMessageText")
    assert second.text == (
        "💬 <b>Your tickets</b> (page 2 of 2)\n\n<b>#1</b> Question 0\nTechnical support · "
        f"⚪ Closed\nLast activity: {when(rows[0].updated_at)}"
    )
    assert second.button_texts() == ["#1 Question 0", "◀️", "✏️ New ticket", "⬅️ Main menu"]

    calls = await driver.click(user, second, "#1 Question 0")
    view = next(c for c in calls if c.method == "editMessageText")
    async with driver.gateway.transaction() as billing:
        messages = await billing.ticket_messages(rows[0].account_id, 1)
    assert view.text == (
        "🎫 <b>Ticket #1</b> · Question 0\nDepartment: Technical support\nStatus: ⚪ Closed\n\n"
        f"<b>You</b> · {when(messages[0].created_at)}\nWrong amount\n\n"
        f"— Closed by you · {when(messages[1].created_at)}"
    )
    assert view.button_texts() == ["🔄 Reopen", "⬅️ Back"]
    back = await driver.click(user, view, "Back")
    assert next(c for c in back if c.method == "editMessageText").text.startswith(
        "💬 <b>Your tickets</b> (page 2 of 2)"
    )

    # Someone else's ticket and a ticket that does not exist: "not found", nothing changes.
    other = driver.user(507)
    menu = (await driver.send(other, "/menu"))[-1]
    for action in ("view", "reply", "close", "reopen"):
        for ticket_id in (2, 999):
            calls = await driver.press(
                other, menu, TicketCb(action=action, ticket_id=ticket_id).pack()
            )
            answer = next(c for c in calls if c.method == "answerCallbackQuery")
            assert (answer["text"], answer["show_alert"]) == (NOT_FOUND, True)
    assert [t.status for t in await tickets_in_db(driver)] == ["closed"] + ["open"] * 5


async def test_reply_close_and_reopen_reach_the_staff_topic(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(508)
    await open_ticket(driver, user)
    view_calls = await driver.click(user, driver.screen_call(508), "Open ticket")
    view = next(c for c in view_calls if c.method == "editMessageText")
    assert view.button_texts() == ["✍️ Reply", "✅ Close", "⬅️ Back"]

    calls = await driver.click(user, view, "Reply")
    prompt = next(c for c in calls if c.method == "sendMessage")
    assert prompt.text == (
        "✍️ Write your reply to ticket #1 «Invoice question»: text, a photo or a document. "
        "/cancel to stop."
    )
    calls = await driver.send(user, "Here is <more>")
    [relay] = sends(calls, STAFF)
    assert (relay.text, relay["message_thread_id"]) == (
        "👤 <b>Customer</b> · ticket #1:\nHere is &lt;more&gt;",
        100,
    )
    assert calls[-1].text == "✅ Your reply is added to ticket #1."
    assert calls[-1].button_texts() == ["📄 Open ticket", "⬅️ Main menu"]

    # A reply with a document: the relayed text is its caption.
    calls = await driver.click(user, view, "Reply")
    calls = await driver.send(user, document="BQADlog", caption="the log")
    [relay] = sends(calls, STAFF)
    assert (relay.method, relay["document"], relay.text) == (
        "sendDocument",
        "BQADlog",
        "👤 <b>Customer</b> · ticket #1:\nthe log",
    )

    calls = await driver.click(user, view, "Close")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "Ticket closed."
    closed_view = next(c for c in calls if c.method == "editMessageText")
    assert "Status: ⚪ Closed" in closed_view.text
    assert closed_view.button_texts() == ["🔄 Reopen", "⬅️ Back"]
    [note] = sends(calls, STAFF)
    assert (note.text, note["message_thread_id"]) == ("✅ The customer closed ticket #1.", 100)

    calls = await driver.click(user, view, "Close")  # the stale button of the old screen
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "This has already been done."

    calls = await driver.click(user, closed_view, "Reopen")
    assert next(c for c in calls if c.method == "answerCallbackQuery")["text"] == (
        "Ticket reopened."
    )
    reopened = next(c for c in calls if c.method == "editMessageText")
    assert "Status: 🟡 Your reply — waiting for support" in reopened.text
    [note] = sends(calls, STAFF)
    assert note.text == "🔄 The customer reopened ticket #1."


async def test_closed_ticket_reopens_by_reply_only_within_the_window(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(509)
    await open_ticket(driver, user)
    menu = (await driver.send(user, "/menu"))[-1]
    await driver.press(user, menu, TicketCb(action="close", ticket_id=1).pack())
    calls = await driver.press(user, menu, TicketCb(action="reply", ticket_id=1).pack())
    await driver.send(user, "It broke again")
    [ticket] = await tickets_in_db(driver)
    assert (ticket.status, ticket.closed_at) == ("customer_replied", None)

    await driver.press(user, menu, TicketCb(action="close", ticket_id=1).pack())
    async with driver.gateway.transaction() as billing:
        row = await billing.session.get(m.Ticket, 1)
        assert row is not None
        row.closed_at = datetime.now(UTC) - timedelta(days=8)
    window = (
        "This ticket was closed more than 7 days ago and cannot be reopened. Please open a new "
        "ticket: /newticket"
    )
    for action in ("reply", "reopen"):
        calls = await driver.press(user, menu, TicketCb(action=action, ticket_id=1).pack())
        answer = next(c for c in calls if c.method == "answerCallbackQuery")
        assert (answer["text"], answer["show_alert"]) == (window, True)
    calls = await driver.press(user, menu, TicketCb(action="view", ticket_id=1).pack())
    assert calls[0].button_texts() == ["⬅️ Back"]
    [ticket] = await tickets_in_db(driver)
    assert ticket.status == "closed"


async def test_prefilled_ticket_from_another_section(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(510, language_code="ru")
    menu = (await driver.send(user, "/menu"))[-1]
    calls = await driver.press(user, menu, NewTicketCb(topic="country").pack())
    assert calls[0].text == (
        "✏️ <b>Новое обращение</b>\nОтдел: Бухгалтерия\nТема: Смена страны\n\n"
        "Опишите проблему. Можно приложить фото и документы."
    )
    calls = await driver.send(user, "Переехал в Германию")
    calls = await driver.click(user, calls[-1], "Создать обращение")
    [ticket] = await tickets_in_db(driver)
    assert (ticket.department, ticket.subject) == ("billing", "Смена страны")
    assert next(c for c in calls if c.method == "createForumTopic")["name"] == "🔴 #1 Смена страны"

    calls = await driver.press(user, menu, NewTicketCb(topic="nonsense").pack())
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "Эта кнопка устарела. Откройте меню заново: /menu"


async def test_menu_buttons_open_the_sections(driver: BotDriver) -> None:
    user = driver.user(511)
    menu = (await driver.send(user, "/menu"))[-1]
    calls = await driver.click(user, menu, "Tickets")
    listing = next(c for c in calls if c.method == "editMessageText")
    assert listing.text.startswith("💬 <b>Your tickets</b>")
    calls = await driver.click(user, listing, "New ticket")
    assert next(c for c in calls if c.method == "editMessageText").text == (
        "✏️ <b>New ticket</b>\n\nChoose the department:"
    )


async def test_ticket_is_kept_when_the_staff_group_is_unreachable(driver: BotDriver) -> None:
    # No staff chat known to Telegram: the customer still gets the ticket.
    user = driver.user(512)
    calls = await open_ticket(driver, user)
    assert next(c for c in calls if c.method == "editMessageText").text == (
        "✅ Ticket #1 is created. Support will answer here, in this chat."
    )
    [ticket] = await tickets_in_db(driver)
    assert await place_in_db(driver, ticket.id) is None
    # Once the group is there, the next customer message opens the topic first.
    staff_forum(driver)
    menu = (await driver.send(user, "/menu"))[-1]
    await driver.press(user, menu, TicketCb(action="reply", ticket_id=1).pack())
    calls = await driver.send(user, "Anyone there?")
    staff = sends(calls, STAFF)
    assert staff[0].text.startswith("🎫 <b>Ticket #1</b> · Invoice question")
    assert staff[1].text == "👤 <b>Customer</b> · ticket #1:\nAnyone there?"


async def test_a_reply_album_goes_to_the_ticket_as_a_whole(driver: BotDriver) -> None:
    staff_forum(driver)
    user = driver.user(513)
    await open_ticket(driver, user)
    menu = (await driver.send(user, "/menu"))[-1]
    await driver.press(user, menu, TicketCb(action="reply", ticket_id=1).pack())
    first = await driver.send(
        user, photo="AgADa1", caption="two shots", extra={"media_group_id": "alb"}
    )
    second = await driver.send(user, photo="AgADa2", extra={"media_group_id": "alb"})
    assert [c.text for c in first if c["chat_id"] == 513] == [
        "✅ Your reply is added to ticket #1."
    ]
    assert [c.method for c in second if c["chat_id"] == 513] == []
    assert [(c.method, c["photo"]) for c in sends(first + second, STAFF)] == [
        ("sendPhoto", "AgADa1"),
        ("sendPhoto", "AgADa2"),
    ]
    # After the album, ordinary messages are not taken as a reply any more.
    calls = await driver.send(user, "hello")
    assert calls[-1].text.startswith("I did not understand that.")
    async with driver.gateway.transaction() as billing:
        thread = await billing.ticket_messages(1, 1)
    assert [[a.file_id for a in x.attachments] for x in thread[1:]] == [["AgADa1"], ["AgADa2"]]
