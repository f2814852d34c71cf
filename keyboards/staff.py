"""Staff-group keyboards and their callback factories."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from keyboards.callbacks import Id


class ClosedAction(StrEnum):
    """What to do with a staff message written in a closed ticket."""

    SEND = "send"  # reopen the ticket and send the message to the customer
    NOTE = "note"  # keep it as an internal note; the ticket stays closed


class ClosedTicketCb(CallbackData, prefix="stc"):
    """Under the question about a staff message in a closed ticket: `message_id` is that
    message in the staff group (the question replies to it)."""

    action: ClosedAction
    ticket_id: Id
    message_id: Id


def closed_ticket_kb(ticket_id: int, message_id: int) -> InlineKeyboardMarkup:
    def button(text: str, action: ClosedAction) -> InlineKeyboardButton:
        data = ClosedTicketCb(action=action, ticket_id=ticket_id, message_id=message_id)
        return InlineKeyboardButton(text=text, callback_data=data.pack())

    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(_("🔄 Reopen and send"), ClosedAction.SEND),
                button(_("📝 Save as a note"), ClosedAction.NOTE),
            ]
        ]
    )
