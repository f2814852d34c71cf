"""Small pure builders every section uses."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton
from aiogram.utils.i18n import gettext as _

from keyboards.callbacks import MenuCb


def back_button(section: str = "main") -> InlineKeyboardButton:
    text = _("⬅️ Main menu") if section == "main" else _("⬅️ Back")
    return InlineKeyboardButton(text=text, callback_data=MenuCb(section=section).pack())


def menu_button(section: str, text: str) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=MenuCb(section=section).pack())


def button(text: str, data: CallbackData) -> InlineKeyboardButton:
    return InlineKeyboardButton(text=text, callback_data=data.pack())
