"""Rendering helpers shared by the section handlers."""

from __future__ import annotations

from datetime import datetime

from aiogram.exceptions import TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import get_i18n
from babel.dates import format_date, format_datetime

from services.contracts.common import Account
from services.contracts.payments import Rates
from services.money import format_money


def locale() -> str:
    return get_i18n().current_locale


def money(minor: int, currency: str) -> str:
    return format_money(minor, currency, locale())


def display_balance(balance_minor: int, account: Account, rates: Rates | None) -> str:
    """The balance in the account's display currency, with the base amount when they differ."""
    base = account.base_currency
    if rates is None or account.currency == base or not rates.has(account.currency):
        return money(balance_minor, base)
    shown = rates.convert(balance_minor, base, account.currency)
    return f"{money(shown, account.currency)} ({money(balance_minor, base)})"


def date(value: datetime) -> str:
    return format_date(value, format="medium", locale=locale())


def datetime_text(value: datetime) -> str:
    return format_datetime(value, format="short", locale=locale())


async def show(
    event: Message | CallbackQuery,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    notice: str | None = None,
) -> None:
    """Render a screen: edit the pressed message when navigating, send a new one otherwise.
    `notice` is the short toast shown on a pressed button."""
    if isinstance(event, CallbackQuery):
        await _edit_or_send(event, text, markup)
        await event.answer(notice)
        return
    await event.answer(text, reply_markup=markup)


async def _edit_or_send(
    query: CallbackQuery, text: str, markup: InlineKeyboardMarkup | None
) -> None:
    message = query.message
    if isinstance(message, Message):
        try:
            await message.edit_text(text, reply_markup=markup)
            return
        except TelegramBadRequest as exc:
            if "message is not modified" in exc.message:
                return  # the same button pressed twice: nothing to change
            # Gone, too old or not a text message (an invoice, a photo): send a fresh one.
    await query.bot.send_message(query.from_user.id, text, reply_markup=markup)
