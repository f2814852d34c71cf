"""Changing an order's tariff: the tariffs offered, the prorated amount for the rest of the
paid period and the change, made only if that amount is still the one the customer confirmed."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from handlers.common import date, show
from handlers.orders_common import (
    alert,
    cancelled_text,
    now,
    order_of,
    price_format,
    shortfall_lines,
    show_details,
)
from keyboards.orders import (
    ChangeAction,
    ChangeCb,
    OrderAction,
    OrderCb,
    PriceFormat,
    change_confirm_kb,
    change_options_kb,
    months_text,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.orders import ACTIVE, CANCELLED, Order, Quote


async def order_change(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await order_of(callback_data, billing, account)
    await show_change_options(query, order, billing, account)


# ---- change tariff ----
def _changeable(order: Order) -> bool:
    return order.status == ACTIVE and order.paid_until > now()


def change_refusal(order: Order) -> str:
    if order.status == CANCELLED:
        return cancelled_text(order)
    return _("The tariff can be changed only while the order is active and paid.")


async def show_change_options(
    query: CallbackQuery, order: Order, billing: Billing, account: Account
) -> None:
    if not _changeable(order):
        await alert(query, change_refusal(order))
        return
    quotes = await billing.change_tariff_options(account.id, order.id)
    fmt = await price_format(billing, account)
    lines = [
        _("🔀 <b>Change the tariff of order #{id}</b>").format(id=order.id),
        _("Now: {tariff}, {price} / {months}").format(
            tariff=escape(order.tariff_name),
            price=fmt(order.price_minor),
            months=months_text(order.period_months),
        ),
        _(
            "The difference for the rest of the paid period (until {date}) is charged or "
            "returned to the balance at once."
        ).format(date=date(order.paid_until)),
        "",
    ]
    if quotes:
        lines.append(_("Choose the new tariff:"))
    else:
        lines.append(_("There is no other tariff for this product and period."))
    await show(query, "\n".join(lines), change_options_kb(order, quotes, fmt))


def change_confirm_text(order: Order, quote: Quote, fmt: PriceFormat) -> str:
    lines = [
        _("🔀 <b>Order #{id}: {old} → {new}</b>").format(
            id=order.id, old=escape(order.tariff_name), new=escape(quote.tariff_name)
        ),
        _("New price: {price} / {months}, from the next renewal.").format(
            price=fmt(quote.price_minor), months=months_text(quote.months)
        ),
    ]
    days = quote.remaining_days
    amount = fmt(abs(quote.amount_minor))
    if quote.amount_minor > 0:
        lines.append(
            ngettext(
                "For the {days} day left of the paid period you pay {amount} now.",
                "For the {days} days left of the paid period you pay {amount} now.",
                days,
            ).format(days=days, amount=amount)
        )
    elif quote.amount_minor < 0:
        lines.append(
            ngettext(
                "For the {days} day left of the paid period {amount} is returned to the balance.",
                "For the {days} days left of the paid period {amount} is returned to the balance.",
                days,
            ).format(days=days, amount=amount)
        )
    else:
        lines.append(_("Nothing is charged for the rest of the paid period."))
    lines.append(_("Paid until stays {date}.").format(date=date(quote.paid_until)))
    if quote.missing_minor:
        lines += shortfall_lines(quote, fmt)
    return "\n".join(lines)


async def _checked_change(
    query: CallbackQuery, callback_data: ChangeCb, billing: Billing, account: Account
) -> tuple[Order, Quote] | None:
    order = await billing.get_order(account.id, callback_data.order_id)
    if order.tariff_id == callback_data.tariff_id:
        notice = _("Order #{id} already has this tariff.").format(id=order.id)
        await show_details(query, billing, order, account, notice)
        return None
    if not _changeable(order):
        await alert(query, change_refusal(order))
        return None
    quotes = await billing.change_tariff_options(account.id, order.id)
    quote = next((q for q in quotes if q.tariff_id == callback_data.tariff_id), None)
    if quote is None:
        await alert(query, _("This tariff is not available for this order."))
        return None
    return order, quote


async def _show_change_confirm(
    query: CallbackQuery,
    order: Order,
    quote: Quote,
    billing: Billing,
    account: Account,
    notice: str | None = None,
) -> None:
    fmt = await price_format(billing, account)
    markup = change_confirm_kb(order, quote, fmt)
    await show(query, change_confirm_text(order, quote, fmt), markup, notice)


async def change_ask(
    query: CallbackQuery, callback_data: ChangeCb, billing: Billing, account: Account
) -> None:
    checked = await _checked_change(query, callback_data, billing, account)
    if checked is not None:
        await _show_change_confirm(query, *checked, billing, account)


async def change_do(
    query: CallbackQuery, callback_data: ChangeCb, billing: Billing, account: Account
) -> None:
    checked = await _checked_change(query, callback_data, billing, account)
    if checked is None:
        return
    order, quote = checked
    if quote.amount_minor != callback_data.amount:
        notice = _("The amount has changed since you saw it: please confirm again.")
        await _show_change_confirm(query, order, quote, billing, account, notice)
        return
    if quote.missing_minor:
        await _show_change_confirm(query, order, quote, billing, account)
        return
    changed = await billing.change_tariff(
        account.id, order.id, quote.tariff_id, expected_amount_minor=callback_data.amount
    )
    notice = _("The tariff is now {tariff}.").format(tariff=changed.tariff_name)
    await show_details(query, billing, changed, account, notice)


def create_router() -> Router:
    router = Router(name="orders_tariff")
    cb = router.callback_query
    cb.register(order_change, OrderCb.filter(F.action == OrderAction.CHANGE))
    cb.register(change_ask, ChangeCb.filter(F.action == ChangeAction.ASK))
    cb.register(change_do, ChangeCb.filter(F.action == ChangeAction.DO))
    return router
