"""Keyboards of the New order section and its CallbackData factory."""

from __future__ import annotations

from collections.abc import Sequence
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _

from keyboards.callbacks import CartAction, CartCb, IdOrZero, MenuCb, Months, Stamp
from keyboards.common import back_button, button
from keyboards.orders import (
    OrderAction,
    OrderCb,
    OrdersAction,
    OrdersCb,
    PriceFormat,
    months_text,
    price_label,
    product_text,
    topup_button,
)
from services.contracts.common import Tariff
from services.contracts.orders import Order, Quote


class NewOrderAction(StrEnum):
    TYPE = "type"  # the tariffs of `product`
    TARIFF = "tariff"  # the periods of `tariff_id`
    PERIOD = "period"  # the confirmation for `months`
    PAY = "pay"  # place the order


class NewOrderCb(CallbackData, prefix="no"):
    """A step of a new order: `action` is a NewOrderAction. `nonce` is set on PAY: one
    confirmation screen places at most one order."""

    action: NewOrderAction
    product: str = ""
    tariff_id: IdOrZero = 0
    months: Months = 0
    nonce: Stamp = 0


def product_types_kb(product_types: Sequence[str], *, has_cart: bool) -> InlineKeyboardMarkup:
    rows = []
    if has_cart:
        rows.append([button(_("✅ Complete the saved order"), CartCb(action=CartAction.COMPLETE))])
        rows.append([button(_("🗑 Drop the saved order"), CartCb(action=CartAction.DROP))])
    rows.extend(
        [button(product_text(p), NewOrderCb(action=NewOrderAction.TYPE, product=p))]
        for p in product_types
    )
    rows.append([back_button()])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def tariffs_kb(tariffs: Sequence[Tariff], fmt: PriceFormat) -> InlineKeyboardMarkup:
    rows = []
    for tariff in tariffs:
        first = tariff.prices[0] if tariff.prices else None
        if first is None:
            continue
        rows.append(
            [
                button(
                    _("{tariff} — {price}").format(
                        tariff=tariff.name,
                        price=_("{price} / {months}").format(
                            price=fmt(first.price_minor),
                            months=months_text(first.months),
                        ),
                    ),
                    NewOrderCb(action=NewOrderAction.TARIFF, tariff_id=tariff.id),
                )
            ]
        )
    rows.append([button(_("⬅️ Back"), MenuCb(section="neworder"))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def periods_kb(tariff: Tariff, fmt: PriceFormat) -> InlineKeyboardMarkup:
    rows = [
        [
            button(
                price_label(fmt, p.price_minor, p.months),
                NewOrderCb(action=NewOrderAction.PERIOD, tariff_id=tariff.id, months=p.months),
            )
        ]
        for p in tariff.prices
    ]
    rows.append(
        [button(_("⬅️ Back"), NewOrderCb(action=NewOrderAction.TYPE, product=tariff.product_type))]
    )
    return InlineKeyboardMarkup(inline_keyboard=rows)


def new_order_confirm_kb(quote: Quote, fmt: PriceFormat, nonce: int) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(
                    _("✅ Pay {amount}").format(amount=fmt(quote.amount_minor)),
                    NewOrderCb(
                        action=NewOrderAction.PAY,
                        tariff_id=quote.tariff_id,
                        months=quote.months,
                        nonce=nonce,
                    ),
                )
            ],
            [
                button(
                    _("⬅️ Back"), NewOrderCb(action=NewOrderAction.TARIFF, tariff_id=quote.tariff_id)
                )
            ],
        ]
    )


def shortfall_kb(missing_minor: int, fmt: PriceFormat) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [topup_button(missing_minor, fmt)],
            [button(_("✅ Complete the order"), CartCb(action=CartAction.COMPLETE))],
            [button(_("🗑 Drop the order"), CartCb(action=CartAction.DROP))],
            [back_button()],
        ]
    )


def order_created_kb(order: Order) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [button(_("📦 Open the order"), OrderCb(action=OrderAction.VIEW, order_id=order.id))],
            [button(_("📦 My orders"), OrdersCb(action=OrdersAction.PAGE, page=1)), back_button()],
        ]
    )
