"""Tickets, the customer's side: the list, a new ticket (department → subject → message with
photos and documents → create), a ticket's conversation, reply, close and reopen.
Everything the customer writes also goes to the ticket's place in the staff group."""

from __future__ import annotations

import html
import math
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import lazy_gettext as __

from bot.config import Settings
from handlers.common import datetime_text, show
from handlers.desk import (
    attachments_of,
    customer_message_text,
    files_line,
    open_in_staff_group,
    post_to_staff,
    staff_locale,
)
from handlers.fallback import stale_button
from keyboards.callbacks import MenuCb, NewTicketCb
from keyboards.menu import back_to_menu_kb
from keyboards.tickets import (
    DraftAction,
    TicketAction,
    TicketCb,
    TicketDeptCb,
    TicketDraftCb,
    cancel_kb,
    department_name,
    departments_kb,
    draft_kb,
    limit_kb,
    open_ticket_kb,
    status_name,
    ticket_view_kb,
    tickets_list_kb,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.tickets import (
    ATTACHMENTS_MAX,
    DEPARTMENTS,
    SUBJECT_MAX,
    SUBJECT_MIN,
    TEXT_MAX,
    Attachment,
    Ticket,
    TicketMessage,
)
from services.errors import InvalidState, LimitReached

PAGE_SIZE = 5
VIEW_LIMIT = 3900  # the conversation shown in one message, under Telegram's 4096

# Prefilled tickets other sections open with NewTicketCb(topic): department and subject.
PREFILLED_TOPICS: dict[str, tuple[str, Any]] = {
    "country": ("billing", __("Change of country")),
    "company": ("billing", __("Company profile verification")),
}


class NewTicket(StatesGroup):
    department = State()
    subject = State()
    message = State()


class TicketReply(StatesGroup):
    text = State()


def reopen_window(settings: Settings) -> timedelta:
    return timedelta(days=settings.ticket_reopen_days)


# ---- texts -------------------------------------------------------------------------------------
def list_text(tickets: list[Ticket], page: int, pages: int) -> str:
    if not tickets:
        return _(
            "💬 <b>Your tickets</b>\n\nYou have no tickets yet. Write to support if you need help."
        )
    lines = [_("💬 <b>Your tickets</b> (page {page} of {pages})").format(page=page, pages=pages)]
    for ticket in tickets:
        lines.append(
            _("<b>#{id}</b> {subject}\n{department} · {status}\nLast activity: {when}").format(
                id=ticket.id,
                subject=html.escape(ticket.subject),
                department=department_name(ticket.department),
                status=status_name(ticket.status),
                when=datetime_text(ticket.updated_at),
            )
        )
    return "\n\n".join(lines)


def message_block(item: TicketMessage) -> str:
    when = datetime_text(item.created_at)
    if item.author == "system":
        labels = {
            "closed_by_customer": _("— Closed by you · {when}"),
            "closed_by_staff": _("— Closed by support · {when}"),
            "reopened": _("— Reopened · {when}"),
        }
        return labels.get(item.text, "— {when}").format(when=when)
    author = _("You") if item.author == "customer" else _("Support")
    block = f"<b>{author}</b> · {when}"
    if item.text:
        block += "\n" + html.escape(item.text)
    if item.attachments:
        block += "\n" + files_line(len(item.attachments))
    return block


def thread_text(ticket: Ticket, messages: list[TicketMessage]) -> str:
    head = "\n".join(
        [
            _("🎫 <b>Ticket #{id}</b> · {subject}").format(
                id=ticket.id, subject=html.escape(ticket.subject)
            ),
            _("Department: {department}").format(department=department_name(ticket.department)),
            _("Status: {status}").format(status=status_name(ticket.status)),
        ]
    )
    blocks: list[str] = []
    size = len(head)
    for item in reversed(messages):
        block = message_block(item)
        if size + len(block) + 2 > VIEW_LIMIT:
            blocks.append(_("… earlier messages are not shown"))
            break
        blocks.append(block)
        size += len(block) + 2
    return "\n\n".join([head, *reversed(blocks)])


def can_reopen(ticket: Ticket, settings: Settings, now: Any) -> bool:
    return ticket.status == "closed" and (
        ticket.closed_at is None or now - ticket.closed_at <= reopen_window(settings)
    )


def window_passed_text(settings: Settings) -> str:
    return ngettext(
        "This ticket was closed more than {days} day ago and cannot be reopened. Please open "
        "a new ticket: /newticket",
        "This ticket was closed more than {days} days ago and cannot be reopened. Please open "
        "a new ticket: /newticket",
        settings.ticket_reopen_days,
    ).format(days=settings.ticket_reopen_days)


# ---- list and view -------------------------------------------------------------------------------
async def show_list(
    event: Message | CallbackQuery,
    billing: Billing,
    account: Account,
    state: FSMContext,
    page: int = 0,
) -> None:
    await state.clear()
    result = await billing.list_tickets(account.id, page * PAGE_SIZE, PAGE_SIZE)
    if page and not result.items and result.total:  # a stale page: show the last one
        page = result.page_count - 1
        result = await billing.list_tickets(account.id, page * PAGE_SIZE, PAGE_SIZE)
    await show(
        event,
        list_text(result.items, result.page_number, result.page_count),
        tickets_list_kb(result, page),
    )


async def cmd_tickets(
    event: Message | CallbackQuery, billing: Billing, account: Account, state: FSMContext
) -> None:
    await show_list(event, billing, account, state)


async def ticket_list(
    query: CallbackQuery,
    callback_data: TicketCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
) -> None:
    await show_list(query, billing, account, state, callback_data.page)


async def ticket_view(
    query: CallbackQuery,
    callback_data: TicketCb,
    billing: Billing,
    account: Account,
    settings: Settings,
) -> None:
    await show_ticket(
        query, billing, account, settings, callback_data.ticket_id, callback_data.page
    )


async def ticket_reply(
    query: CallbackQuery,
    callback_data: TicketCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
) -> None:
    await start_reply(query, billing, account, state, settings, callback_data.ticket_id)


async def ticket_close(
    query: CallbackQuery,
    callback_data: TicketCb,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
    i18n: I18n,
) -> None:
    ticket = await billing.close_ticket(account.id, callback_data.ticket_id)
    with staff_locale(i18n, settings):
        staff_text = _("✅ The customer closed ticket #{id}.").format(id=ticket.id)
    await post_to_staff(bot, billing, settings, i18n, ticket, staff_text)
    await show_ticket(
        query, billing, account, settings, ticket.id, callback_data.page, _("Ticket closed.")
    )


async def ticket_reopen(
    query: CallbackQuery,
    callback_data: TicketCb,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
    i18n: I18n,
) -> None:
    try:
        ticket = await billing.reopen_ticket(
            account.id, callback_data.ticket_id, reopen_window=reopen_window(settings)
        )
    except InvalidState:
        await query.answer(window_passed_text(settings)[:200], show_alert=True)
        return
    with staff_locale(i18n, settings):
        staff_text = _("🔄 The customer reopened ticket #{id}.").format(id=ticket.id)
    await post_to_staff(bot, billing, settings, i18n, ticket, staff_text)
    await show_ticket(
        query, billing, account, settings, ticket.id, callback_data.page, _("Ticket reopened.")
    )


async def show_ticket(
    event: Message | CallbackQuery,
    billing: Billing,
    account: Account,
    settings: Settings,
    ticket_id: int,
    page: int = 0,
    notice: str | None = None,
) -> None:
    ticket = await billing.get_ticket(account.id, ticket_id)
    messages = await billing.ticket_messages(account.id, ticket_id)
    now = datetime.now(UTC)
    await show(
        event,
        thread_text(ticket, messages),
        ticket_view_kb(ticket, can_reopen(ticket, settings, now), page),
        notice,
    )


# ---- a new ticket ----------------------------------------------------------------------------
def limit_text(error: LimitReached) -> str:
    """Why no new ticket can be opened now (short enough for a callback alert)."""
    if error.detail == "tickets_per_hour":
        return ngettext(
            "You can open at most {limit} ticket an hour. Please try again in {minutes} min, "
            "or write in a ticket that is open.",
            "You can open at most {limit} tickets an hour. Please try again in {minutes} min, "
            "or write in a ticket that is open.",
            error.limit,
        ).format(limit=error.limit, minutes=max(1, math.ceil(error.retry_after / 60)))
    return ngettext(
        "You already have {limit} open ticket. Please write in it, or close it if it is "
        "solved, before opening a new one.",
        "You already have {limit} open tickets. Please write in one of them, or close those "
        "that are solved, before opening a new one.",
        error.limit,
    ).format(limit=error.limit)


async def start_new_ticket(
    event: Message | CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    await state.clear()
    try:
        await billing.check_new_ticket(account.id)
    except LimitReached as error:
        await show(event, "⚠️ " + limit_text(error), limit_kb())
        return
    await state.set_state(NewTicket.department)
    await show(event, _("✏️ <b>New ticket</b>\n\nChoose the department:"), departments_kb())


async def start_prefilled(
    query: CallbackQuery,
    callback_data: NewTicketCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
) -> None:
    topic = PREFILLED_TOPICS.get(callback_data.topic)
    if topic is None:
        await stale_button(query)
        return
    department, subject = topic
    await state.clear()
    try:
        await billing.check_new_ticket(account.id)
    except LimitReached as error:
        await show(query, "⚠️ " + limit_text(error), limit_kb())
        return
    await state.set_state(NewTicket.message)
    await state.update_data(department=department, subject=str(subject), text="", files=[])
    await show(query, describe_text(department, str(subject)), cancel_kb())


async def choose_department(
    query: CallbackQuery, callback_data: TicketDeptCb, state: FSMContext
) -> None:
    if callback_data.department not in DEPARTMENTS:
        await stale_button(query)
        return
    await state.update_data(department=callback_data.department)
    await state.set_state(NewTicket.subject)
    await show(
        query,
        _(
            "✏️ <b>New ticket</b>\nDepartment: {department}\n\n"
            "Enter the subject ({min}–{max} characters):"
        ).format(
            department=department_name(callback_data.department), min=SUBJECT_MIN, max=SUBJECT_MAX
        ),
        cancel_kb(),
    )


def describe_text(department: str, subject: str) -> str:
    return _(
        "✏️ <b>New ticket</b>\nDepartment: {department}\nSubject: {subject}\n\n"
        "Describe the problem. You can attach photos and documents."
    ).format(department=department_name(department), subject=html.escape(subject))


async def enter_subject(message: Message, state: FSMContext) -> None:
    subject = " ".join((message.text or "").split())
    if not SUBJECT_MIN <= len(subject) <= SUBJECT_MAX:
        await message.answer(
            _("The subject must be {min} to {max} characters long. Please try again:").format(
                min=SUBJECT_MIN, max=SUBJECT_MAX
            ),
            reply_markup=cancel_kb(),
        )
        return
    data = await state.get_data()
    await state.update_data(subject=subject, text="", files=[])
    await state.set_state(NewTicket.message)
    await message.answer(describe_text(data["department"], subject), reply_markup=cancel_kb())


def draft_text(data: dict[str, Any]) -> str:
    files = len(data.get("files", []))
    return _(
        "📝 <b>Draft</b>\nDepartment: {department}\nSubject: {subject}\nFiles: {files}\n\n"
        "{text}\n\nSend more text, photos or documents to add them, or create the ticket."
    ).format(
        department=department_name(data["department"]),
        subject=html.escape(data["subject"]),
        files=files,
        text=html.escape(data.get("text") or "—"),
    )


async def enter_message(message: Message, state: FSMContext) -> None:
    new_text = (message.text or message.caption or "").strip()
    new_files = attachments_of(message)
    if not new_text and not new_files:
        await message.answer(
            _("Please send text, a photo or a document."), reply_markup=cancel_kb()
        )
        return
    data = await state.get_data()
    text = "\n\n".join(filter(None, [data.get("text", ""), new_text]))
    files = list(data.get("files", []))
    if len(text) > TEXT_MAX:
        await message.answer(
            _(
                "The message is too long: at most {max} characters in all. "
                "Please send a shorter one."
            ).format(max=TEXT_MAX),
            reply_markup=draft_kb() if data.get("text") or files else cancel_kb(),
        )
        return
    if len(files) + len(new_files) > ATTACHMENTS_MAX:
        await message.answer(
            _("At most {max} files can be attached.").format(max=ATTACHMENTS_MAX),
            reply_markup=draft_kb(),
        )
        return
    files += [[item.kind, item.file_id] for item in new_files]
    await state.update_data(text=text, files=files)
    data = await state.get_data()
    await message.answer(draft_text(data), reply_markup=draft_kb())


async def draft_cancel(query: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    await show(query, _("Cancelled. Nothing was changed."), back_to_menu_kb())


async def draft_send(
    query: CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
    i18n: I18n,
) -> None:
    data = await state.get_data()
    if await state.get_state() != NewTicket.message.state or not (
        data.get("text") or data.get("files")
    ):
        await stale_button(query)
        return
    files = [Attachment(kind, file_id) for kind, file_id in data.get("files", [])]
    try:
        ticket = await billing.create_ticket(
            account.id,
            data["department"],
            data["subject"],
            data.get("text", ""),
            files,
            language=i18n.current_locale,
        )
    except LimitReached as error:  # the draft stays: «Create» works again once a slot frees
        await query.answer(limit_text(error), show_alert=True)
        return
    await state.clear()
    await open_in_staff_group(bot, billing, settings, i18n, ticket, files)
    await show(
        query,
        _("✅ Ticket #{id} is created. Support will answer here, in this chat.").format(
            id=ticket.id
        ),
        open_ticket_kb(ticket.id),
    )


# ---- replies ------------------------------------------------------------------------------------
async def start_reply(
    query: CallbackQuery,
    billing: Billing,
    account: Account,
    state: FSMContext,
    settings: Settings,
    ticket_id: int,
) -> None:
    ticket = await billing.get_ticket(account.id, ticket_id)
    if ticket.status == "closed" and not can_reopen(ticket, settings, datetime.now(UTC)):
        await query.answer(window_passed_text(settings)[:200], show_alert=True)
        return
    await state.clear()
    await state.set_state(TicketReply.text)
    await state.update_data(ticket_id=ticket.id)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            _(
                "✍️ Write your reply to ticket #{id} «{subject}»: text, a photo or a document. "
                "/cancel to stop."
            ).format(id=ticket.id, subject=html.escape(ticket.subject)),
            reply_markup=cancel_kb(),
        )


async def enter_reply(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    settings: Settings,
    bot: Bot,
    i18n: I18n,
) -> None:
    text = (message.text or message.caption or "").strip()
    files = attachments_of(message)
    if not text and not files:
        await message.answer(
            _("Please send text, a photo or a document."), reply_markup=cancel_kb()
        )
        return
    if len(text) > TEXT_MAX:
        await message.answer(
            _(
                "The message is too long: at most {max} characters. Please send a shorter one."
            ).format(max=TEXT_MAX),
            reply_markup=cancel_kb(),
        )
        return
    data = await state.get_data()
    try:
        ticket = await billing.add_customer_message(
            account.id, int(data["ticket_id"]), text, files, reopen_window=reopen_window(settings)
        )
    except InvalidState:
        await state.clear()
        await message.answer(window_passed_text(settings), reply_markup=back_to_menu_kb())
        return
    first_part = data.get("album") is None
    if message.media_group_id:  # an album arrives as several messages: take them all
        await state.update_data(album=message.media_group_id)
    else:
        await state.clear()
    with staff_locale(i18n, settings):
        staff_text = customer_message_text(ticket, text)
    await post_to_staff(bot, billing, settings, i18n, ticket, staff_text, files)
    if first_part:
        await message.answer(
            _("✅ Your reply is added to ticket #{id}.").format(id=ticket.id),
            reply_markup=open_ticket_kb(ticket.id),
        )


async def expects_reply(message: Message, state: FSMContext) -> bool:
    """After an album, only the rest of that album still belongs to the reply."""
    album = (await state.get_data()).get("album")
    return album is None or message.media_group_id == album


def create_router() -> Router:
    router = Router(name="tickets")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(cmd_tickets, Command("tickets"))
    router.message.register(start_new_ticket, Command("newticket"))
    router.callback_query.register(cmd_tickets, MenuCb.filter(F.section == "tickets"))
    router.callback_query.register(start_new_ticket, MenuCb.filter(F.section == "newticket"))
    router.callback_query.register(start_prefilled, NewTicketCb.filter())
    cb = router.callback_query
    cb.register(ticket_list, TicketCb.filter(F.action == TicketAction.LIST))
    cb.register(start_new_ticket, TicketCb.filter(F.action == TicketAction.NEW))
    cb.register(ticket_view, TicketCb.filter(F.action == TicketAction.VIEW))
    cb.register(ticket_reply, TicketCb.filter(F.action == TicketAction.REPLY))
    cb.register(ticket_close, TicketCb.filter(F.action == TicketAction.CLOSE))
    cb.register(ticket_reopen, TicketCb.filter(F.action == TicketAction.REOPEN))
    router.callback_query.register(
        choose_department, TicketDeptCb.filter(), StateFilter(NewTicket.department)
    )
    any_state = StateFilter("*")
    cb.register(draft_send, TicketDraftCb.filter(F.action == DraftAction.SEND), any_state)
    cb.register(draft_cancel, TicketDraftCb.filter(F.action == DraftAction.CANCEL), any_state)
    not_command = ~F.text.startswith("/")
    router.message.register(enter_subject, StateFilter(NewTicket.subject), not_command)
    router.message.register(enter_message, StateFilter(NewTicket.message), not_command)
    router.message.register(enter_reply, StateFilter(TicketReply.text), not_command, expects_reply)
    return router
