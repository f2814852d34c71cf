"""Main menu and language keyboards."""

from __future__ import annotations

from functools import lru_cache

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, WebAppInfo
from aiogram.utils.i18n import get_i18n
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from keyboards.callbacks import LangCb, MenuCb
from keyboards.common import back_button

LANGUAGE_NAMES = {"en": "🇬🇧 English", "ru": "🇷🇺 Русский"}


def main_menu_kb(cabinet_url: str | None = None) -> InlineKeyboardMarkup:
    """`cabinet_url`: the Mini App (bot/web), when the web side is on with an https address."""
    return _main_menu_kb(get_i18n().current_locale, cabinet_url)


@lru_cache(maxsize=8)
def _main_menu_kb(locale: str, cabinet_url: str | None = None) -> InlineKeyboardMarkup:
    """The most shown keyboard, built once per language (the builder deep-copies on export)."""
    builder = InlineKeyboardBuilder()
    items = [
        ("orders", _("📦 Orders")),
        ("neworder", _("🛒 New order")),
        ("invoices", _("🧾 Invoices")),
        ("balance", _("💰 Balance")),
        ("tickets", _("💬 Tickets")),
        ("settings", _("⚙️ Settings")),
        ("help", _("❓ Help")),
        ("language", _("🌐 Language")),
    ]
    for section, text in items:
        builder.button(text=text, callback_data=MenuCb(section=section))
    builder.adjust(2)
    if cabinet_url:
        builder.row(
            InlineKeyboardButton(text=_("🖥 Open cabinet"), web_app=WebAppInfo(url=cabinet_url))
        )
    return builder.as_markup()


def back_to_menu_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[back_button()]])


def language_kb(current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        builder.button(
            text=("✅ " if code == current else "") + name, callback_data=LangCb(code=code)
        )
    builder.adjust(2)
    builder.row(back_button())
    return builder.as_markup()
