"""Tickets, the customer's side: the list of tickets, a ticket's conversation, close and
reopen (within the reopen window). Closing and reopening are told to the staff group too."""

from __future__ import annotations

import html
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, F, Router
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import datetime_text, show
from handlers.desk import files_line, post_to_staff, staff_locale
from keyboards.callbacks import MenuCb
from keyboards.tickets import (
    TicketAction,
    TicketCb,
    department_name,
    status_name,
    ticket_view_kb,
    tickets_list_kb,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.tickets import Ticket, TicketMessage
from services.errors import InvalidState

PAGE_SIZE = 5
VIEW_LIMIT = 3900  # the conversation shown in one message, under Telegram's 4096


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


def create_router() -> Router:
    router = Router(name="tickets_view")
    router.message.register(cmd_tickets, Command("tickets"))
    cb = router.callback_query
    cb.register(cmd_tickets, MenuCb.filter(F.section == "tickets"))
    cb.register(ticket_list, TicketCb.filter(F.action == TicketAction.LIST))
    cb.register(ticket_view, TicketCb.filter(F.action == TicketAction.VIEW))
    cb.register(ticket_close, TicketCb.filter(F.action == TicketAction.CLOSE))
    cb.register(ticket_reopen, TicketCb.filter(F.action == TicketAction.REOPEN))
    return router
