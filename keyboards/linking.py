"""Keyboards of account linking (a Telegram user to a client of the external billing)."""

from __future__ import annotations

from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from keyboards.common import back_button, button


class LinkAction(StrEnum):
    START = "start"  # ask for the e-mail
    UNLINK = "unlink"  # ask "really unlink?"
    UNLINK_YES = "unlink_yes"
    CANCEL = "cancel"


class LinkCb(CallbackData, prefix="ln"):
    action: LinkAction


def link_button() -> InlineKeyboardButton:
    return button(_("🔗 Link my account"), LinkCb(action=LinkAction.START))


def link_kb() -> InlineKeyboardMarkup:
    """Under the explanation an unlinked user gets instead of the cabinet."""
    return InlineKeyboardMarkup(inline_keyboard=[[link_button()]])


def cancel_link_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(_("✖️ Cancel"), LinkCb(action=LinkAction.CANCEL))]]
    )


def unlink_button() -> InlineKeyboardButton:
    return button(_("🔓 Unlink Telegram from the account"), LinkCb(action=LinkAction.UNLINK))


def unlink_confirm_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("✅ Yes, unlink"), LinkCb(action=LinkAction.UNLINK_YES))],
            [back_button()],
        ]
    )
