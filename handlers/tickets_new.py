"""Tickets, the customer's side: a new ticket — department → subject → message with photos
and documents → create (or a ticket prefilled by another section). The created ticket gets its
place in the staff group."""

from __future__ import annotations

import html
import math
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
from handlers.common import show
from handlers.desk import attachments_of, open_in_staff_group
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
)
from services.errors import LimitReached

# Prefilled tickets other sections open with NewTicketCb(topic): department and subject.
PREFILLED_TOPICS: dict[str, tuple[str, Any]] = {
    "country": ("billing", __("Change of country")),
    "company": ("billing", __("Company profile verification")),
}


class NewTicket(StatesGroup):
    department = State()
    subject = State()
    message = State()


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


def create_router() -> Router:
    router = Router(name="tickets_new")
    router.message.register(start_new_ticket, Command("newticket"))
    cb = router.callback_query
    cb.register(start_new_ticket, MenuCb.filter(F.section == "newticket"))
    cb.register(start_prefilled, NewTicketCb.filter())
    cb.register(start_new_ticket, TicketCb.filter(F.action == TicketAction.NEW))
    cb.register(choose_department, TicketDeptCb.filter(), StateFilter(NewTicket.department))
    any_state = StateFilter("*")
    cb.register(draft_send, TicketDraftCb.filter(F.action == DraftAction.SEND), any_state)
    cb.register(draft_cancel, TicketDraftCb.filter(F.action == DraftAction.CANCEL), any_state)
    not_command = ~F.text.startswith("/")
    router.message.register(enter_subject, StateFilter(NewTicket.subject), not_command)
    router.message.register(enter_message, StateFilter(NewTicket.message), not_command)
    return router
