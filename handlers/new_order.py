"""The New order section: product type → tariff → period → confirm → paid from the balance.
Without enough money the order is remembered as the cart: a top-up of exactly the shortfall is
offered, and the cart's «complete» button (CartAction.COMPLETE) finishes it in one tap (also
shown by the payments section after a top-up)."""

from __future__ import annotations

import time
from html import escape

from aiogram import F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import gettext as _

from handlers.common import date, show
from handlers.orders_common import price_format
from keyboards.callbacks import CartAction, CartCb, MenuCb
from keyboards.new_order import (
    NewOrderAction,
    NewOrderCb,
    new_order_confirm_kb,
    order_created_kb,
    periods_kb,
    product_types_kb,
    shortfall_kb,
    tariffs_kb,
)
from keyboards.orders import PriceFormat, months_text, product_text
from services.billing import Billing
from services.contracts.common import Account, Tariff
from services.contracts.orders import Cart, Order, Quote
from services.errors import InsufficientFunds


async def alert(query: CallbackQuery, text: str) -> None:
    await query.answer(text, show_alert=True)


def cart_line(cart: Cart, fmt: PriceFormat) -> str:
    return _("{tariff}, {months} — {price}").format(
        tariff=escape(cart.tariff_name),
        months=months_text(cart.months),
        price=fmt(cart.price_minor),
    )


async def show_start(
    event: Message | CallbackQuery, billing: Billing, account: Account, notice: str | None = None
) -> None:
    cart = await billing.get_cart(account.id)
    fmt = await price_format(billing, account)
    lines = [_("🛒 <b>New order</b>")]
    if cart is not None:
        lines.append(_("🧺 Saved order: {order}").format(order=cart_line(cart, fmt)))
    lines += ["", _("Choose a product:")]
    product_types = await billing.list_product_types(account_id=account.id)
    markup = product_types_kb(product_types, has_cart=cart is not None)
    await show(event, "\n".join(lines), markup, notice)


async def cmd_new_order(
    event: Message | CallbackQuery, billing: Billing, account: Account, state: FSMContext
) -> None:
    await state.set_state(None)
    await show_start(event, billing, account)


def tariff_block(tariff: Tariff, fmt: PriceFormat) -> str:
    first = tariff.prices[0]
    return "\n".join(
        [
            _("<b>{tariff}</b> — from {price} / {months}").format(
                tariff=escape(tariff.name),
                price=fmt(first.price_minor),
                months=months_text(first.months),
            ),
            escape(tariff.specs),
        ]
    )


async def _tariff(
    query: CallbackQuery, billing: Billing, tariff_id: int, account: Account
) -> Tariff | None:
    tariffs = await billing.list_tariffs(account_id=account.id)
    tariff = next((t for t in tariffs if t.id == tariff_id and t.prices), None)
    if tariff is None:
        await alert(query, _("This tariff is not available any more."))
    return tariff


async def new_order_type(
    query: CallbackQuery, callback_data: NewOrderCb, billing: Billing, account: Account
) -> None:
    if callback_data.product not in await billing.list_product_types(account_id=account.id):
        await alert(query, _("This product is not available."))
        return
    fmt = await price_format(billing, account)
    offered = await billing.list_tariffs(callback_data.product, account_id=account.id)
    tariffs = [t for t in offered if t.prices]
    lines = [f"{product_text(callback_data.product)}", ""]
    lines += [tariff_block(t, fmt) + "\n" for t in tariffs]
    lines.append(_("Choose a tariff:"))
    await show(query, "\n".join(lines), tariffs_kb(tariffs, fmt))


async def new_order_tariff(
    query: CallbackQuery, callback_data: NewOrderCb, billing: Billing, account: Account
) -> None:
    tariff = await _tariff(query, billing, callback_data.tariff_id, account)
    if tariff is None:
        return
    text = "\n".join(
        [
            _("🛒 <b>{tariff}</b> ({product})").format(
                tariff=escape(tariff.name), product=product_text(tariff.product_type)
            ),
            escape(tariff.specs),
            "",
            _("Choose a period:"),
        ]
    )
    await show(query, text, periods_kb(tariff, await price_format(billing, account)))


async def _offered(
    query: CallbackQuery, callback_data: NewOrderCb, billing: Billing, account: Account
) -> tuple[Tariff, Quote] | None:
    """The tariff and the quote of a period button, or None after saying why not."""
    tariff = await _tariff(query, billing, callback_data.tariff_id, account)
    if tariff is None:
        return None
    if tariff.price_for(callback_data.months) is None:
        await alert(query, _("This period is not offered for this tariff."))
        return None
    return tariff, await billing.quote_new_order(account.id, tariff.id, callback_data.months)


async def new_order_period(
    query: CallbackQuery, callback_data: NewOrderCb, billing: Billing, account: Account
) -> None:
    offered = await _offered(query, callback_data, billing, account)
    if offered is None:
        return
    tariff, quote = offered
    fmt = await price_format(billing, account)
    markup = new_order_confirm_kb(quote, fmt, time.time_ns() // 1000)
    await show(query, confirm_text(tariff, quote, fmt), markup)


async def new_order_pay(
    query: CallbackQuery, callback_data: NewOrderCb, billing: Billing, account: Account
) -> None:
    offered = await _offered(query, callback_data, billing, account)
    if offered is None:
        return
    tariff, quote = offered
    # The nonce of the confirmation screen: a double tap on its "Pay" places one order (the
    # second tap finds it by the key, even when the balance no longer covers the price).
    key = f"neworder:{account.id}:{callback_data.nonce}" if callback_data.nonce else None
    try:
        order = await billing.place_order(account.id, tariff.id, quote.months, idempotency_key=key)
    except InsufficientFunds:  # nothing was written: remember the cart, offer the top-up
        await billing.save_cart(account.id, tariff.id, quote.months)
        quote = await billing.quote_new_order(account.id, tariff.id, quote.months)
        fmt = await price_format(billing, account)
        await show(
            query, shortfall_text(tariff.name, quote, fmt), shortfall_kb(quote.missing_minor, fmt)
        )
        return
    cart = await billing.get_cart(account.id)
    if cart is not None and (cart.tariff_id, cart.months) == (tariff.id, quote.months):
        await billing.clear_cart(account.id)
    await show_created(query, billing, order, account)


def confirm_text(tariff: Tariff, quote: Quote, fmt: PriceFormat) -> str:
    return "\n".join(
        [
            _("🛒 <b>Confirm the order</b>"),
            _("Tariff: {tariff} ({product})").format(
                tariff=escape(tariff.name), product=product_text(tariff.product_type)
            ),
            escape(tariff.specs),
            _("Period: {months}").format(months=months_text(quote.months)),
            _("Price: {price}").format(price=fmt(quote.amount_minor)),
            _("Balance: {balance}").format(balance=fmt(quote.balance_minor)),
            "",
            _("The price is debited from the balance and the server gets its IP address at once."),
        ]
    )


def shortfall_text(tariff_name: str, quote: Quote, fmt: PriceFormat) -> str:
    return "\n".join(
        [
            _("🛒 <b>Not enough money for the order</b>"),
            _("{tariff}, {months} — {price}").format(
                tariff=escape(tariff_name),
                months=months_text(quote.months),
                price=fmt(quote.amount_minor),
            ),
            _("Balance: {balance}. Missing: {missing}.").format(
                balance=fmt(quote.balance_minor),
                missing=fmt(quote.missing_minor),
            ),
            "",
            _("The order is saved: top up the balance and complete it in one tap."),
        ]
    )


async def show_created(
    event: Message | CallbackQuery, billing: Billing, order: Order, account: Account
) -> None:
    fmt = await price_format(billing, account)
    text = "\n".join(
        [
            _("✅ <b>Order #{id} is active</b>").format(id=order.id),
            _("{tariff}, {months} — {price} paid from the balance.").format(
                tariff=escape(order.tariff_name),
                months=months_text(order.period_months),
                price=fmt(order.price_minor),
            ),
            _("IP address: {ip}").format(
                ip=f"<code>{escape(order.ip_address)}</code>" if order.ip_address else "—"
            ),
            _("Paid until: {date}").format(date=date(order.paid_until)),
        ]
    )
    await show(event, text, order_created_kb(order), _("The order is placed."))


async def cart_drop(query: CallbackQuery, billing: Billing, account: Account) -> None:
    await billing.clear_cart(account.id)
    await show_start(query, billing, account, _("The saved order was dropped."))


async def cart_complete(
    query: CallbackQuery, callback_data: CartCb, billing: Billing, account: Account
) -> None:
    # Pressed on a payment receipt: the answer is a new message and the receipt stays (only
    # its "complete" button goes once the order is placed or gone).
    receipt = query.message if callback_data.action == CartAction.RECEIPT else None
    event: Message | CallbackQuery = receipt if isinstance(receipt, Message) else query
    cart = await billing.get_cart(account.id)
    if cart is None:
        if event is query:
            await show_start(query, billing, account, _("There is no saved order to complete."))
        else:
            await alert(query, _("There is no saved order to complete."))
            await _drop_button(event, callback_data)
        return
    quote = await billing.quote_new_order(account.id, cart.tariff_id, cart.months)
    if quote.missing_minor:
        fmt = await price_format(billing, account)
        markup = shortfall_kb(quote.missing_minor, fmt)
        await show(event, shortfall_text(cart.tariff_name, quote, fmt), markup)
    else:
        order = await billing.complete_cart(account.id)
        await show_created(event, billing, order, account)
    if event is not query:
        await query.answer(None if quote.missing_minor else _("The order is placed."))
        if not quote.missing_minor:
            await _drop_button(event, callback_data)


async def _drop_button(message: Message | CallbackQuery, callback_data: CartCb) -> None:
    """Take the pressed button off a message, leaving its text and other buttons."""
    if not isinstance(message, Message) or message.reply_markup is None:
        return
    packed = callback_data.pack()
    keyboard = message.reply_markup.inline_keyboard
    rows = [[b for b in row if b.callback_data != packed] for row in keyboard]
    if rows == keyboard:
        return
    markup = InlineKeyboardMarkup(inline_keyboard=[row for row in rows if row])
    try:
        await message.edit_reply_markup(reply_markup=markup)
    except TelegramBadRequest as exc:  # "not modified": an old copy pressed, already taken off
        if "message is not modified" not in exc.message:
            raise


def create_router() -> Router:
    router = Router(name="new_order")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(cmd_new_order, Command("neworder"))
    router.callback_query.register(cmd_new_order, MenuCb.filter(F.section == "neworder"))
    cb = router.callback_query
    cb.register(new_order_type, NewOrderCb.filter(F.action == NewOrderAction.TYPE))
    cb.register(new_order_tariff, NewOrderCb.filter(F.action == NewOrderAction.TARIFF))
    cb.register(new_order_period, NewOrderCb.filter(F.action == NewOrderAction.PERIOD))
    cb.register(new_order_pay, NewOrderCb.filter(F.action == NewOrderAction.PAY))
    completing = CartCb.filter(F.action.in_({CartAction.COMPLETE, CartAction.RECEIPT}))
    router.callback_query.register(cart_complete, completing)
    router.callback_query.register(cart_drop, CartCb.filter(F.action == CartAction.DROP))
    return router
