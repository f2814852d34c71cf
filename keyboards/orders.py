"""Keyboards and labels of the Orders section, and its CallbackData factories (the New order
section's are in keyboards/new_order.py).
Every factory stays well under Telegram's 64 bytes (ids are integers, actions short words)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from enum import StrEnum

from aiogram.filters.callback_data import CallbackData
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup
from aiogram.utils.i18n import get_i18n, ngettext
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from keyboards.callbacks import (
    Id,
    MenuCb,
    Months,
    PageNumber,
    SignedAmountMinor,
    Stamp,
    TopupCb,
)
from keyboards.common import back_button, button
from services.contracts.common import Page
from services.contracts.orders import (
    ACTIVE,
    CANCELLED,
    EXPIRED,
    PENDING,
    SUSPENDED,
    Order,
    Quote,
)
from services.contracts.payments import Rates
from services.money import format_money

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class OrdersAction(StrEnum):
    """What a button of the orders list does (the values are what old buttons carry)."""

    PAGE = "page"  # page 0 = the page last shown
    SEARCH = "search"
    SORT = "sort"
    CLEAR = "clear"


class OrdersCb(CallbackData, prefix="ol"):
    """The orders list: `action` is an OrdersAction."""

    action: OrdersAction
    page: PageNumber = 0


class OrderSortKey(StrEnum):
    """What the orders list is sorted by (services.contracts.orders.SORT_KEYS; the values are
    what old buttons carry)."""

    CREATED = "created"
    STATUS = "status"
    COST = "cost"
    PAID_UNTIL = "paid_until"


class OrderSortCb(CallbackData, prefix="os"):
    """Sort the orders list: `key` is an OrderSortKey."""

    key: OrderSortKey
    desc: bool


class OrderAction(StrEnum):
    """What a button of one order does (the values are what old buttons carry)."""

    VIEW = "view"
    RENEW = "renew"
    CHANGE = "change"
    CANCEL = "cancel"
    AUTO_ON = "auto_on"
    AUTO_OFF = "auto_off"
    RESUME = "resume"


class OrderCb(CallbackData, prefix="od"):
    """One order: `action` is an OrderAction."""

    action: OrderAction
    order_id: Id


class RenewAction(StrEnum):
    ASK = "ask"  # show the confirmation
    PAY = "pay"  # renew


class RenewCb(CallbackData, prefix="or"):
    """`action` is a RenewAction. `start` is the paid-until the user saw (microseconds since
    the epoch): a second press for the same period changes nothing."""

    action: RenewAction
    order_id: Id
    months: Months
    start: Stamp


class ChangeAction(StrEnum):
    ASK = "ask"  # show the prorated amount
    DO = "do"  # change the tariff if the amount is still `amount`


class ChangeCb(CallbackData, prefix="oc"):
    """`action` is a ChangeAction; `amount` the prorated amount the user confirmed."""

    action: ChangeAction
    order_id: Id
    tariff_id: Id
    amount: SignedAmountMinor = 0


class CancelWhen(StrEnum):
    END = "end"  # at the end of the paid period
    NOW = "now"  # at once, no refund


class CancelCb(CallbackData, prefix="ox"):
    """Cancel an order: `when` is a CancelWhen."""

    when: CancelWhen
    order_id: Id


def stamp(value: datetime) -> int:
    """A datetime as whole microseconds since the epoch (exact, unlike float timestamps)."""
    return (value - _EPOCH) // timedelta(microseconds=1)


def from_stamp(value: int) -> datetime:
    return _EPOCH + timedelta(microseconds=value)


# ---- labels ---------------------------------------------------------------------------------
@dataclass(frozen=True)
class PriceFormat:
    """Formats base-currency amounts (what the ledger moves) for one account: in its display
    currency at the current rate when one is known, with the exact base amount beside it."""

    base_currency: str
    currency: str | None = None
    rates: Rates | None = None

    def __call__(self, minor: int) -> str:
        locale = get_i18n().current_locale
        base = format_money(minor, self.base_currency, locale)
        shown = self.currency
        if not shown or shown == self.base_currency or not self.rates or not self.rates.has(shown):
            return base
        converted = self.rates.convert(minor, self.base_currency, shown)
        return f"{format_money(converted, shown, locale)} ({base})"


def months_text(months: int) -> str:
    return ngettext("{n} month", "{n} months", months).format(n=months)


def days_left_text(days: int) -> str:
    return ngettext("{n} day left", "{n} days left", days).format(n=days)


def status_text(status: str) -> str:
    labels = {
        ACTIVE: _("✅ Active"),
        PENDING: _("⏳ Pending"),
        EXPIRED: _("⚠️ Expired"),
        SUSPENDED: _("⛔ Suspended"),
        CANCELLED: _("✖️ Cancelled"),
    }
    return labels.get(status, status)


def product_text(product_type: str) -> str:
    labels = {
        "dedicated": _("🖥 Dedicated servers"),
        "vps": _("☁️ VPS/VDS"),
        # WHMCS product types
        "hostingaccount": _("🌐 Hosting"),
        "reselleraccount": _("🤝 Reseller hosting"),
        "server": _("🖥 Servers"),
        "other": _("📦 Other"),
    }
    return labels.get(product_type, product_type)


def sort_text(key: str) -> str:
    labels = {
        "created": _("creation date"),
        "status": _("status"),
        "cost": _("monthly price"),
        "paid_until": _("paid until"),
    }
    return labels.get(key, key)


def price_label(fmt: PriceFormat, price_minor: int, months: int) -> str:
    return _("{months} — {price}").format(months=months_text(months), price=fmt(price_minor))


# ---- orders ---------------------------------------------------------------------------------
def _row(*buttons: InlineKeyboardButton) -> list[InlineKeyboardButton]:
    return list(buttons)


def orders_list_kb(page: Page[Order], *, searching: bool) -> InlineKeyboardMarkup:
    rows = [
        _row(
            button(
                _("#{id} · {tariff}").format(id=order.id, tariff=order.tariff_name),
                OrderCb(action=OrderAction.VIEW, order_id=order.id),
            )
        )
        for order in page.items
    ]
    nav = []
    if page.has_prev:
        nav.append(
            button(_("◀️ Previous"), OrdersCb(action=OrdersAction.PAGE, page=page.page_number - 1))
        )
    if page.has_next:
        nav.append(
            button(_("Next ▶️"), OrdersCb(action=OrdersAction.PAGE, page=page.page_number + 1))
        )
    if nav:
        rows.append(nav)
    rows.append(
        _row(
            button(_("🔍 Search"), OrdersCb(action=OrdersAction.SEARCH)),
            button(_("↕️ Sort"), OrdersCb(action=OrdersAction.SORT)),
        )
    )
    if searching:
        rows.append(_row(button(_("✖️ Clear search"), OrdersCb(action=OrdersAction.CLEAR))))
    rows.append(_row(button(_("🛒 New order"), MenuCb(section="neworder")), back_button()))
    return InlineKeyboardMarkup(inline_keyboard=rows)


def no_orders_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(_("🛒 New order"), MenuCb(section="neworder"))], [back_button()]]
    )


def no_match_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [
                button(_("🔍 Search again"), OrdersCb(action=OrdersAction.SEARCH)),
                button(_("✖️ Clear search"), OrdersCb(action=OrdersAction.CLEAR)),
            ],
            [back_button()],
        ]
    )


def search_prompt_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[[button(_("⬅️ Back to orders"), OrdersCb(action=OrdersAction.PAGE))]]
    )


def sort_kb(current: OrderSortKey, descending: bool) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for key in OrderSortKey:
        mark = "✅ " if key == current else ""
        builder.button(
            text=mark + sort_text(key).capitalize(),
            callback_data=OrderSortCb(key=key, desc=descending),
        )
    builder.adjust(2)
    toggle = _("⬆️ Ascending") if descending else _("⬇️ Descending")
    builder.row(button(toggle, OrderSortCb(key=current, desc=not descending)))
    builder.row(button(_("⬅️ Back to orders"), OrdersCb(action=OrdersAction.PAGE)))
    return builder.as_markup()


def back_to_ordersbutton() -> InlineKeyboardButton:
    return button(_("⬅️ Back to orders"), OrdersCb(action=OrdersAction.PAGE))


def order_details_kb(order: Order, now: datetime) -> InlineKeyboardMarkup:
    rows: list[list[InlineKeyboardButton]] = []
    if order.renewable:
        rows.append([button(_("🔄 Renew"), OrderCb(action=OrderAction.RENEW, order_id=order.id))])
    if order.status == ACTIVE and order.paid_until > now:
        rows.append(
            [button(_("🔀 Change tariff"), OrderCb(action=OrderAction.CHANGE, order_id=order.id))]
        )
    if order.cancel_at_period_end and order.status != CANCELLED:
        rows.append(
            [button(_("↩️ Keep the order"), OrderCb(action=OrderAction.RESUME, order_id=order.id))]
        )
    elif order.status not in (CANCELLED, PENDING):
        if order.auto_renew:
            toggle = button(
                _("🔁 Turn auto-renew off"), OrderCb(action=OrderAction.AUTO_OFF, order_id=order.id)
            )
        else:
            toggle = button(
                _("🔁 Turn auto-renew on"), OrderCb(action=OrderAction.AUTO_ON, order_id=order.id)
            )
        rows.append([toggle])
    if order.status not in (CANCELLED, PENDING):
        rows.append(
            [button(_("❌ Cancel order"), OrderCb(action=OrderAction.CANCEL, order_id=order.id))]
        )
    rows.append([back_to_ordersbutton()])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def renew_periods_kb(
    order: Order, quotes: Sequence[Quote], fmt: PriceFormat
) -> InlineKeyboardMarkup:
    start = stamp(order.paid_until)
    rows = [
        [
            button(
                price_label(fmt, q.price_minor, q.months),
                RenewCb(action=RenewAction.ASK, order_id=order.id, months=q.months, start=start),
            )
        ]
        for q in quotes
    ]
    rows.append([button(_("⬅️ Back"), OrderCb(action=OrderAction.VIEW, order_id=order.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def renew_confirm_kb(
    order: Order, quote: Quote, start: int, fmt: PriceFormat
) -> InlineKeyboardMarkup:
    rows = []
    if quote.missing_minor:
        rows.append([topup_button(quote.missing_minor, fmt)])
    else:
        rows.append(
            [
                button(
                    _("✅ Pay {amount}").format(amount=fmt(quote.amount_minor)),
                    RenewCb(
                        action=RenewAction.PAY, order_id=order.id, months=quote.months, start=start
                    ),
                )
            ]
        )
    rows.append([button(_("⬅️ Back"), OrderCb(action=OrderAction.RENEW, order_id=order.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def topup_button(missing_minor: int, fmt: PriceFormat) -> InlineKeyboardButton:
    return button(
        _("💳 Top up {amount}").format(amount=fmt(missing_minor)),
        TopupCb(amount_minor=missing_minor),
    )


def change_options_kb(
    order: Order, quotes: Sequence[Quote], fmt: PriceFormat
) -> InlineKeyboardMarkup:
    rows = [
        [
            button(
                _("{tariff} — {price}").format(
                    tariff=q.tariff_name, price=price_label_for(q, order, fmt)
                ),
                ChangeCb(action=ChangeAction.ASK, order_id=order.id, tariff_id=q.tariff_id),
            )
        ]
        for q in quotes
    ]
    rows.append([button(_("⬅️ Back"), OrderCb(action=OrderAction.VIEW, order_id=order.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def price_label_for(quote: Quote, order: Order, fmt: PriceFormat) -> str:
    """ "€129.00 / 1 month": the new tariff's price for the order's period."""
    return _("{price} / {months}").format(
        price=fmt(quote.price_minor), months=months_text(order.period_months)
    )


def change_confirm_kb(order: Order, quote: Quote, fmt: PriceFormat) -> InlineKeyboardMarkup:
    rows = []
    if quote.missing_minor:
        rows.append([topup_button(quote.missing_minor, fmt)])
    else:
        rows.append(
            [
                button(
                    _("✅ Confirm"),
                    ChangeCb(
                        action=ChangeAction.DO,
                        order_id=order.id,
                        tariff_id=quote.tariff_id,
                        amount=quote.amount_minor,
                    ),
                )
            ]
        )
    rows.append([button(_("⬅️ Back"), OrderCb(action=OrderAction.CHANGE, order_id=order.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def cancel_kb(order: Order, now: datetime) -> InlineKeyboardMarkup:
    rows = []
    if order.status == ACTIVE and order.paid_until > now and not order.cancel_at_period_end:
        rows.append(
            [
                button(
                    _("📅 At the end of the period"),
                    CancelCb(when=CancelWhen.END, order_id=order.id),
                )
            ]
        )
    rows.append(
        [button(_("⛔ Cancel now, no refund"), CancelCb(when=CancelWhen.NOW, order_id=order.id))]
    )
    rows.append([button(_("⬅️ Back"), OrderCb(action=OrderAction.VIEW, order_id=order.id))])
    return InlineKeyboardMarkup(inline_keyboard=rows)
