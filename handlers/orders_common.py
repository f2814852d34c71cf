"""What the Orders sub-routers share: the clock, the price format, an order's details screen
and the re-read of a button's order (the billing checks it is the caller's)."""

from __future__ import annotations

from datetime import UTC, datetime
from html import escape

from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.common import date, show
from keyboards.orders import (
    OrderCb,
    PriceFormat,
    days_left_text,
    months_text,
    order_details_kb,
    product_text,
    status_text,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.orders import ACTIVE, CANCELLED, PENDING, Order, Quote


def now() -> datetime:
    return datetime.now(UTC)


# ---- texts ----
def ip_text(order: Order) -> str:
    if order.ip_address:
        return f"<code>{escape(order.ip_address)}</code>"
    if order.released_ip:  # a cancelled order's last address, in its history
        return _("<code>{ip}</code> (released)").format(ip=escape(order.released_ip))
    return "—"


def details_text(order: Order, fmt: PriceFormat) -> str:
    at = now()
    status = order.display_status(at)
    paid_until = date(order.paid_until)
    if status in (ACTIVE, PENDING):
        paid_until = _("{date} ({days})").format(
            date=paid_until, days=days_left_text(order.days_left(at))
        )
    next_charge = order.next_charge()
    lines = [
        _("📦 <b>Order #{id}</b>").format(id=order.id),
        _("Tariff: {tariff} ({product})").format(
            tariff=escape(order.tariff_name), product=product_text(order.product_type)
        ),
        _("IP address: {ip}").format(ip=ip_text(order)),
        _("Status: {status}").format(status=status_text(status)),
        _("Period: {months}, {price}").format(
            months=months_text(order.period_months), price=fmt(order.price_minor)
        ),
        _("Created: {date}").format(date=date(order.created_at)),
        _("Paid until: {date}").format(date=paid_until),
        _("Next charge: {date}, {price}").format(
            date=date(next_charge), price=fmt(order.price_minor)
        )
        if next_charge
        else _("Next charge: —"),
        _("Auto-renew: on") if order.auto_renew else _("Auto-renew: off"),
    ]
    if order.cancel_at_period_end and order.status != CANCELLED:
        lines.append(
            _("⚠️ The order will be cancelled on {date}, at the end of the paid period.").format(
                date=date(order.paid_until)
            )
        )
    if order.cancelled_at:
        lines.append(_("Cancelled on {date}.").format(date=date(order.cancelled_at)))
    return "\n".join(lines)


def shortfall_lines(quote: Quote, fmt: PriceFormat) -> list[str]:
    return [
        _("Balance: {balance}").format(balance=fmt(quote.balance_minor)),
        _("Not enough money: {missing} is missing. Top up the balance, then come back.").format(
            missing=fmt(quote.missing_minor)
        ),
    ]


def cancelled_text(order: Order) -> str:
    return _("Order #{id} is cancelled: it cannot be renewed or changed.").format(id=order.id)


async def price_format(billing: Billing, account: Account) -> PriceFormat:
    """Amounts in the account's display currency (at the current rate, the exact base amount
    beside it), or in the base currency when they are the same or no rate is known."""
    if account.currency == account.base_currency:
        return PriceFormat(account.base_currency)
    return PriceFormat(account.base_currency, account.currency, await billing.get_rates())


# ---- alerts for stale or forged buttons (the "out of date" one: handlers.fallback) ----
async def alert(query: CallbackQuery, text: str) -> None:
    await query.answer(text, show_alert=True)


# ---- one order ----
async def show_details(
    event: Message | CallbackQuery,
    billing: Billing,
    order: Order,
    account: Account,
    notice: str | None = None,
) -> None:
    fmt = await price_format(billing, account)
    await show(event, details_text(order, fmt), order_details_kb(order, now()), notice)


async def order_of(callback_data: OrderCb, billing: Billing, account: Account) -> Order:
    """The order of a button, re-read: NotFound (an alert) if it is not the caller's."""
    return await billing.get_order(account.id, callback_data.order_id)
