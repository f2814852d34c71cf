"""Ticket keyboards, their callback factories and the labels of departments and statuses."""

from __future__ import annotations

from enum import StrEnum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder
from pydantic import Field

from keyboards.callbacks import Id, IdOrZero, PageNumber
from keyboards.common import back_button, menu_button
from services.contracts.common import Page
from services.contracts.tickets import DEPARTMENTS, Ticket

RATINGS = (1, 2, 3, 4, 5)
Rating = Annotated[int, Field(ge=1, le=5)]


class TicketAction(StrEnum):
    """What a ticket button does (the values are what old buttons carry)."""

    LIST = "list"  # the list, at `page`
    NEW = "new"
    VIEW = "view"
    REPLY = "reply"
    CLOSE = "close"
    REOPEN = "reopen"


class TicketCb(CallbackData, prefix="tk"):
    """A ticket or the list of them: `action` is a TicketAction."""

    action: TicketAction
    ticket_id: IdOrZero = 0
    page: PageNumber = 0


class TicketRateCb(CallbackData, prefix="tkr"):
    """The customer's rating (1-5) of a closed ticket."""

    ticket_id: Id
    rating: Rating


class TicketDeptCb(CallbackData, prefix="tkd"):
    department: str


class DraftAction(StrEnum):
    SEND = "send"  # create the ticket from the draft
    CANCEL = "cancel"


class TicketDraftCb(CallbackData, prefix="tkn"):
    """The new-ticket draft: `action` is a DraftAction."""

    action: DraftAction


def department_name(code: str) -> str:
    names = {
        "tech": _("Technical support"),
        "billing": _("Billing"),
        "abuse": _("Abuse"),
    }
    return names.get(code, code)


def status_name(code: str) -> str:
    names = {
        "open": _("🟢 Open"),
        "answered": _("🔵 Answered — waiting for you"),
        "customer_replied": _("🟡 Your reply — waiting for support"),
        "closed": _("⚪ Closed"),
    }
    return names.get(code, code)


def tickets_list_kb(page: Page[Ticket], page_index: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for ticket in page.items:
        builder.row(
            InlineKeyboardButton(
                text=f"#{ticket.id} {ticket.subject}"[:60],
                callback_data=TicketCb(
                    action=TicketAction.VIEW, ticket_id=ticket.id, page=page_index
                ).pack(),
            )
        )
    nav = []
    if page.has_prev:
        nav.append(
            InlineKeyboardButton(
                text="◀️",
                callback_data=TicketCb(action=TicketAction.LIST, page=page_index - 1).pack(),
            )
        )
    if page.has_next:
        nav.append(
            InlineKeyboardButton(
                text="▶️",
                callback_data=TicketCb(action=TicketAction.LIST, page=page_index + 1).pack(),
            )
        )
    if nav:
        builder.row(*nav)
    builder.row(new_ticket_button())
    builder.row(back_button())
    return builder.as_markup()


def new_ticket_button() -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=_("✏️ New ticket"), callback_data=TicketCb(action=TicketAction.NEW).pack()
    )


def departments_kb() -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code in DEPARTMENTS:
        builder.button(text=department_name(code), callback_data=TicketDeptCb(department=code))
    builder.button(text=_("✖️ Cancel"), callback_data=TicketDraftCb(action=DraftAction.CANCEL))
    builder.adjust(1)
    return builder.as_markup()


def cancel_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✖️ Cancel"),
                    callback_data=TicketDraftCb(action=DraftAction.CANCEL).pack(),
                )
            ]
        ]
    )


def draft_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✅ Create ticket"),
                    callback_data=TicketDraftCb(action=DraftAction.SEND).pack(),
                ),
                InlineKeyboardButton(
                    text=_("✖️ Cancel"),
                    callback_data=TicketDraftCb(action=DraftAction.CANCEL).pack(),
                ),
            ]
        ]
    )


def ticket_view_kb(ticket: Ticket, can_reopen: bool, page: int = 0) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    if ticket.status != "closed":
        builder.button(
            text=_("✍️ Reply"),
            callback_data=TicketCb(action=TicketAction.REPLY, ticket_id=ticket.id),
        )
        builder.button(
            text=_("✅ Close"),
            callback_data=TicketCb(action=TicketAction.CLOSE, ticket_id=ticket.id),
        )
    elif can_reopen:
        builder.button(
            text=_("🔄 Reopen"),
            callback_data=TicketCb(action=TicketAction.REOPEN, ticket_id=ticket.id),
        )
    builder.adjust(2)
    builder.row(
        InlineKeyboardButton(
            text=_("⬅️ Back"), callback_data=TicketCb(action=TicketAction.LIST, page=page).pack()
        )
    )
    return builder.as_markup()


def answer_kb(ticket_id: int) -> InlineKeyboardMarkup:
    """Under a pushed support answer."""
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                InlineKeyboardButton(
                    text=_("✍️ Reply"),
                    callback_data=TicketCb(action=TicketAction.REPLY, ticket_id=ticket_id).pack(),
                ),
                InlineKeyboardButton(
                    text=_("📄 Open ticket"),
                    callback_data=TicketCb(action=TicketAction.VIEW, ticket_id=ticket_id).pack(),
                ),
            ]
        ]
    )


def open_ticket_kb(ticket_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("📄 Open ticket"),
        callback_data=TicketCb(action=TicketAction.VIEW, ticket_id=ticket_id),
    )
    builder.row(back_button())
    return builder.as_markup()


def closed_ticket_kb(ticket_id: int) -> InlineKeyboardMarkup:
    """Under the close notice: how the support did (1-5), the ticket, the menu."""
    builder = InlineKeyboardBuilder()
    for rating in RATINGS:
        builder.button(
            text="⭐" + str(rating), callback_data=TicketRateCb(ticket_id=ticket_id, rating=rating)
        )
    builder.adjust(5)
    builder.attach(InlineKeyboardBuilder.from_markup(open_ticket_kb(ticket_id)))
    return builder.as_markup()


def window_passed_kb() -> InlineKeyboardMarkup:
    """Under "this ticket cannot be reopened": a new ticket, the main menu."""
    return InlineKeyboardMarkup(inline_keyboard=[[new_ticket_button()], [back_button()]])


def limit_kb() -> InlineKeyboardMarkup:
    """Under "a ticket limit is reached": the customer's tickets, the main menu."""
    return InlineKeyboardMarkup(
        inline_keyboard=[[menu_button("tickets", _("💬 Tickets"))], [back_button()]]
    )
