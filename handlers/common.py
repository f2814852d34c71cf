"""Rendering helpers shared by the section handlers."""

from __future__ import annotations

import logging
from datetime import date as Date
from datetime import datetime
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import get_i18n
from babel.dates import format_date, format_datetime

from services.billing import Billing
from services.contracts.common import Account
from services.contracts.payments import Rates
from services.money import format_money

log = logging.getLogger(__name__)


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


async def display_rates(billing: Billing, account: Account) -> Rates | None:
    """The rates `display_balance` needs for `account`: None, and nothing read, while it shows
    the base currency."""
    if account.currency == account.base_currency:
        return None
    return await billing.get_rates()


def date(value: Date) -> str:
    return format_date(value, format="medium", locale=locale())


def datetime_text(value: datetime) -> str:
    return format_datetime(value, format="short", locale=locale())


async def answer_or_queue(
    bot: Bot,
    billing: Billing,
    chat_id: int,
    text: str,
    markup: InlineKeyboardMarkup | None = None,
    *,
    key: str,
) -> bool:
    """Send a message that must reach the customer (a payment receipt, a refund notice): when
    Telegram refuses or cannot be reached, it goes to the outbox under `key` and the sender
    delivers it later. Returns whether it was sent now."""
    try:
        await bot.send_message(chat_id, text, reply_markup=markup)
        return True
    except TelegramAPIError as exc:
        log.warning("Message %s to chat %s not sent (%s): queued", key, chat_id, exc.message)
    payload: dict[str, Any] = {"text": text}
    if markup is not None:
        payload["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
    await billing.enqueue_message(chat_id, "sendMessage", payload, idempotency_key=key)
    return False


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
    bot = query.bot
    assert bot is not None, "updates fed by the dispatcher are bound to their bot"
    await bot.send_message(query.from_user.id, text, reply_markup=markup)
