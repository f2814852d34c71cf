"""Renewing an order: the periods offered, the confirmation and the payment from the balance.
A renew button carries the paid-until it was shown for, so a second press pays nothing twice."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _

from handlers.common import date, show
from handlers.orders_common import (
    alert,
    cancelled_text,
    order_of,
    price_format,
    shortfall_lines,
    show_details,
)
from keyboards.orders import (
    OrderAction,
    OrderCb,
    PriceFormat,
    RenewAction,
    RenewCb,
    from_stamp,
    months_text,
    renew_confirm_kb,
    renew_periods_kb,
    stamp,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.orders import CANCELLED, Order, Quote


async def order_renew(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await order_of(callback_data, billing, account)
    await show_renew_periods(query, order, billing, account)


# ---- renew ----
async def show_renew_periods(
    query: CallbackQuery, order: Order, billing: Billing, account: Account
) -> None:
    if not order.renewable:
        await alert(query, _renew_refusal(order))
        return
    quotes = await billing.renewal_options(account.id, order.id)
    fmt = await price_format(billing, account)
    text = "\n".join(
        [
            _("🔄 <b>Renew order #{id}</b> ({tariff})").format(
                id=order.id, tariff=escape(order.tariff_name)
            ),
            _("Paid until: {date}").format(date=date(order.paid_until)),
            _("Balance: {balance}").format(balance=fmt(quotes[0].balance_minor if quotes else 0)),
            "",
            _("Choose a period:"),
        ]
    )
    await show(query, text, renew_periods_kb(order, quotes, fmt))


def _renew_refusal(order: Order) -> str:
    if order.status == CANCELLED:
        return cancelled_text(order)
    return _("Order #{id} cannot be renewed yet: it is still being set up.").format(id=order.id)


async def _checked_renewal(
    query: CallbackQuery, callback_data: RenewCb, billing: Billing, account: Account
) -> tuple[Order, Quote] | None:
    """The order and the quote of a renew button, or None after telling why it is stale."""
    order = await billing.get_order(account.id, callback_data.order_id)
    if not order.renewable:
        await alert(query, _renew_refusal(order))
        return None
    if stamp(order.paid_until) != callback_data.start:
        notice = _("This period is already paid: order #{id} is paid until {date}.").format(
            id=order.id, date=date(order.paid_until)
        )
        await show_details(query, billing, order, account, notice)
        return None
    quotes = await billing.renewal_options(account.id, order.id)
    quote = next((q for q in quotes if q.months == callback_data.months), None)
    if quote is None:
        await alert(query, _("This period is not offered for this tariff."))
        return None
    return order, quote


def renew_confirm_text(order: Order, quote: Quote, fmt: PriceFormat) -> str:
    lines = [
        _("🔄 <b>Renew order #{id}</b> ({tariff}) for {months}").format(
            id=order.id, tariff=escape(order.tariff_name), months=months_text(quote.months)
        ),
        _("Price: {price}").format(price=fmt(quote.amount_minor)),
        _("Paid until: {old} → {new}").format(
            old=date(order.paid_until), new=date(quote.paid_until)
        ),
    ]
    change = _terms_change(order, quote, fmt)
    if change:
        lines.append(change)
    if quote.missing_minor:
        lines += shortfall_lines(quote, fmt)
    else:
        lines.append(
            _("The price is debited from the balance ({balance}).").format(
                balance=fmt(quote.balance_minor)
            )
        )
    return "\n".join(lines)


def _terms_change(order: Order, quote: Quote, fmt: PriceFormat) -> str | None:
    """What the renewal changes in the order's own period and price (later renewals and
    auto-renewal use them), or None when they stay as they are."""
    if quote.months != order.period_months:
        return _(
            "⚠️ The order's period changes from {old_months} ({old_price}) to {new_months} "
            "({new_price}): later renewals are for {new_months}."
        ).format(
            old_months=months_text(order.period_months),
            old_price=fmt(order.price_minor),
            new_months=months_text(quote.months),
            new_price=fmt(quote.price_minor),
        )
    if quote.price_minor != order.price_minor:
        return _(
            "⚠️ The order's price changes from {old_price} to {new_price} per {months}."
        ).format(
            old_price=fmt(order.price_minor),
            new_price=fmt(quote.price_minor),
            months=months_text(quote.months),
        )
    return None


async def _show_renew_confirm(
    query: CallbackQuery, order: Order, quote: Quote, start: int, fmt: PriceFormat
) -> None:
    markup = renew_confirm_kb(order, quote, start, fmt)
    await show(query, renew_confirm_text(order, quote, fmt), markup)


async def renew_ask(
    query: CallbackQuery, callback_data: RenewCb, billing: Billing, account: Account
) -> None:
    checked = await _checked_renewal(query, callback_data, billing, account)
    if checked is not None:
        fmt = await price_format(billing, account)
        await _show_renew_confirm(query, *checked, callback_data.start, fmt)


async def renew_pay(
    query: CallbackQuery, callback_data: RenewCb, billing: Billing, account: Account
) -> None:
    checked = await _checked_renewal(query, callback_data, billing, account)
    if checked is None:
        return
    order, quote = checked
    if quote.missing_minor:  # the balance fell since the confirmation: show it again
        fmt = await price_format(billing, account)
        await _show_renew_confirm(query, order, quote, callback_data.start, fmt)
        return
    renewed = await billing.renew_order(
        account.id, order.id, quote.months, period_start=from_stamp(callback_data.start)
    )
    notice = _("Renewed: paid until {date}.").format(date=date(renewed.paid_until))
    await show_details(query, billing, renewed, account, notice)


def create_router() -> Router:
    router = Router(name="orders_renew")
    cb = router.callback_query
    cb.register(order_renew, OrderCb.filter(F.action == OrderAction.RENEW))
    cb.register(renew_ask, RenewCb.filter(F.action == RenewAction.ASK))
    cb.register(renew_pay, RenewCb.filter(F.action == RenewAction.PAY))
    return router
