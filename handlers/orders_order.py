"""One order: its details, cancel (at the end of the period or now), resume and auto-renew.
Every action re-reads the order through the billing (which checks it is the caller's); forged
or stale buttons get an alert and change nothing."""

from __future__ import annotations

from html import escape

from aiogram import F, Router
from aiogram.types import CallbackQuery
from aiogram.utils.i18n import gettext as _

from handlers.common import date, show
from handlers.fallback import stale_button
from handlers.orders_common import alert, cancelled_text, now, order_of, show_details
from keyboards.orders import CancelCb, CancelWhen, OrderAction, OrderCb, cancel_kb
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.orders import ACTIVE, CANCELLED, PENDING, Order


async def order_view(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    await show_details(query, billing, await order_of(callback_data, billing, account), account)


async def order_cancel(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    await show_cancel(query, await order_of(callback_data, billing, account), account)


async def order_auto_on(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await order_of(callback_data, billing, account)
    await toggle_auto_renew(query, order, billing, account, enabled=True)


async def order_auto_off(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await order_of(callback_data, billing, account)
    await toggle_auto_renew(query, order, billing, account, enabled=False)


async def order_resume(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await order_of(callback_data, billing, account)
    if not order.cancel_at_period_end or order.status == CANCELLED:
        await alert(query, _("The order is not set to be cancelled."))
        return
    order = await billing.resume_order(account.id, order.id)
    notice = (
        _("The order will not be cancelled. Auto-renew is on again.")
        if order.auto_renew
        else _("The order will not be cancelled. Auto-renew stays off.")
    )
    await show_details(query, billing, order, account, notice)


async def toggle_auto_renew(
    query: CallbackQuery, order: Order, billing: Billing, account: Account, enabled: bool
) -> None:
    if order.status == CANCELLED or (enabled and order.cancel_at_period_end):
        await alert(query, _("Auto-renew cannot be turned on for an order that is cancelled."))
        return
    order = await billing.set_order_auto_renew(account.id, order.id, enabled)
    notice = _("Auto-renew is on.") if enabled else _("Auto-renew is off.")
    await show_details(query, billing, order, account, notice)


# ---- cancel ----
async def show_cancel(query: CallbackQuery, order: Order, account: Account) -> None:
    if order.status in (CANCELLED, PENDING):
        await alert(
            query,
            cancelled_text(order)
            if order.status == CANCELLED
            else _("Order #{id} cannot be cancelled while it is being set up.").format(id=order.id),
        )
        return
    at = now()
    lines = [
        _("❌ <b>Cancel order #{id}</b> ({tariff})?").format(
            id=order.id, tariff=escape(order.tariff_name)
        ),
        "",
    ]
    if order.status == ACTIVE and order.paid_until > at and not order.cancel_at_period_end:
        lines.append(
            _(
                "📅 At the end of the period: the server works until {date} and is not renewed."
            ).format(date=date(order.paid_until))
        )
    lines.append(_("⛔ Now: the server is stopped at once; the unused days are not refunded."))
    await show(query, "\n".join(lines), cancel_kb(order, at))


async def _cancellable(
    query: CallbackQuery, callback_data: CancelCb, billing: Billing, account: Account
) -> Order | None:
    """The order of a cancel button, or None after telling why it cannot be cancelled."""
    order = await billing.get_order(account.id, callback_data.order_id)
    if order.status == CANCELLED:
        notice = _("Order #{id} is already cancelled.").format(id=order.id)
        await show_details(query, billing, order, account, notice)
        return None
    if order.status == PENDING:
        await stale_button(query)
        return None
    return order


async def cancel_at_end(
    query: CallbackQuery, callback_data: CancelCb, billing: Billing, account: Account
) -> None:
    order = await _cancellable(query, callback_data, billing, account)
    if order is None:
        return
    if order.cancel_at_period_end:
        await show_details(
            query, billing, order, account, _("The cancellation is already scheduled.")
        )
        return
    if order.status != ACTIVE or order.paid_until <= now():
        await alert(query, _("The paid period is over: the order can only be cancelled now."))
        return
    order = await billing.cancel_order(account.id, order.id, immediately=False)
    notice = _("The order will be cancelled on {date}.").format(date=date(order.paid_until))
    await show_details(query, billing, order, account, notice)


async def cancel_now(
    query: CallbackQuery, callback_data: CancelCb, billing: Billing, account: Account
) -> None:
    order = await _cancellable(query, callback_data, billing, account)
    if order is None:
        return
    order = await billing.cancel_order(account.id, order.id, immediately=True)
    notice = _("Order #{id} is cancelled.").format(id=order.id)
    await show_details(query, billing, order, account, notice)


def create_router() -> Router:
    router = Router(name="orders_order")
    cb = router.callback_query
    cb.register(order_view, OrderCb.filter(F.action == OrderAction.VIEW))
    cb.register(order_cancel, OrderCb.filter(F.action == OrderAction.CANCEL))
    cb.register(order_auto_on, OrderCb.filter(F.action == OrderAction.AUTO_ON))
    cb.register(order_auto_off, OrderCb.filter(F.action == OrderAction.AUTO_OFF))
    cb.register(order_resume, OrderCb.filter(F.action == OrderAction.RESUME))
    cb.register(cancel_at_end, CancelCb.filter(F.when == CancelWhen.END))
    cb.register(cancel_now, CancelCb.filter(F.when == CancelWhen.NOW))
    return router
