"""Markups of pushed alerts and of the admin broadcast dialog.

The alert builders are handed to the alert jobs by the composition root (bot/scheduler.py):
services never import keyboards."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from keyboards.callbacks import IdOrZero, MenuCb, TopupCb
from keyboards.orders import OrderAction, OrderCb

MAX_RENEW_BUTTONS = 6


class BroadcastAction(StrEnum):
    SEND = "send"  # confirm the previewed draft
    DROP = "drop"  # discard it
    STOP = "stop"  # cancel a broadcast being sent


class BroadcastCb(CallbackData, prefix="bc"):
    """`action` is a BroadcastAction. `broadcast_id` is 0 for the draft kept in the dialog
    state."""

    action: BroadcastAction
    broadcast_id: IdOrZero = 0


def low_balance_kb(topup_minor: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(text=_("💳 Top up"), callback_data=TopupCb(amount_minor=topup_minor))
    builder.button(text=_("📦 Orders"), callback_data=MenuCb(section="orders"))
    builder.adjust(2)
    return builder.as_markup()


def orders_alert_kb(order_ids: Sequence[int], topup_minor: int) -> InlineKeyboardMarkup:
    """A renew button per order (the first few) and a top-up of `topup_minor` (0: choose)."""
    builder = InlineKeyboardBuilder()
    shown = list(order_ids)[:MAX_RENEW_BUTTONS]
    for order_id in shown:
        builder.button(
            text=_("🔄 Renew #{order_id}").format(order_id=order_id),
            callback_data=OrderCb(action=OrderAction.RENEW, order_id=order_id),
        )
    if len(order_ids) > len(shown):
        builder.button(text=_("📦 All orders"), callback_data=MenuCb(section="orders"))
    builder.button(text=_("💳 Top up"), callback_data=TopupCb(amount_minor=max(0, topup_minor)))
    builder.adjust(2)
    return builder.as_markup()


def broadcast_confirm_kb(subscribers: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("📣 Send to {count}").format(count=subscribers),
        callback_data=BroadcastCb(action=BroadcastAction.SEND),
    )
    builder.button(text=_("✖️ Discard"), callback_data=BroadcastCb(action=BroadcastAction.DROP))
    builder.adjust(1)
    return builder.as_markup()


def broadcast_progress_kb(broadcast_id: int) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    builder.button(
        text=_("⏹ Stop the broadcast"),
        callback_data=BroadcastCb(action=BroadcastAction.STOP, broadcast_id=broadcast_id),
    )
    return builder.as_markup()
