"""The Orders section: the paginated list (search, sort), an order's details and its actions —
renew, change tariff, cancel, resume, auto-renew. Every action re-reads the order through the
billing (which checks it is the caller's); forged or stale buttons get an alert and change
nothing."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime
from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _
from aiogram.utils.i18n import ngettext

from handlers.common import date, show
from handlers.fallback import stale_button
from keyboards.callbacks import MenuCb
from keyboards.orders import (
    CancelCb,
    ChangeAction,
    ChangeCb,
    OrderAction,
    OrderCb,
    OrdersAction,
    OrdersCb,
    OrderSortCb,
    PriceFormat,
    RenewAction,
    RenewCb,
    cancel_kb,
    change_confirm_kb,
    change_options_kb,
    days_left_text,
    from_stamp,
    months_text,
    no_match_kb,
    no_orders_kb,
    order_details_kb,
    orders_list_kb,
    product_text,
    renew_confirm_kb,
    renew_periods_kb,
    search_prompt_kb,
    sort_kb,
    sort_text,
    stamp,
    status_text,
)
from services.billing import Billing
from services.contracts.common import Account, Page
from services.contracts.orders import ACTIVE, CANCELLED, PENDING, SORT_KEYS, Order, Quote

PAGE_SIZE = 5
MAX_QUERY_LENGTH = 64
PREFS_DESTINY = "orders"


class OrdersStates(StatesGroup):
    search = State()


def now() -> datetime:
    return datetime.now(UTC)


# ---- list preferences (sort, search, page) ----
def prefs_context(state: FSMContext) -> FSMContext:
    """The list's sort, search and page live in FSM data of their own destiny, so leaving for
    the main menu (which clears the dialog state) keeps the chosen sort for the session. A
    storage whose key builder has no destinies keeps them in the dialog's data instead."""
    builder = getattr(state.storage, "key_builder", None)
    if builder is not None and not getattr(builder, "with_destiny", False):
        return state
    return FSMContext(state.storage, replace(state.key, destiny=PREFS_DESTINY))


async def _prefs(state: FSMContext) -> dict[str, object]:
    data = await prefs_context(state).get_data()
    sort = data.get("orders_sort")
    return {
        "sort": sort if sort in SORT_KEYS else "created",
        "desc": bool(data.get("orders_desc", True)),
        "query": data.get("orders_query") or None,
        "page": int(data.get("orders_page") or 1),
    }


async def _save_prefs(state: FSMContext, **values: object) -> None:
    await prefs_context(state).update_data({f"orders_{k}": v for k, v in values.items()})


# ---- texts ----
def ip_text(order: Order) -> str:
    return f"<code>{escape(order.ip_address)}</code>" if order.ip_address else "—"


def order_block(order: Order, at: datetime, fmt: PriceFormat) -> str:
    status = order.display_status(at)
    parts = [status_text(status), _("paid until {date}").format(date=date(order.paid_until))]
    if status in (ACTIVE, PENDING):
        parts.append(days_left_text(order.days_left(at)))
    if order.cancel_at_period_end and order.status != CANCELLED:
        parts.append(_("cancels at period end"))
    return "\n".join(
        [
            _("<b>#{id}</b> · {tariff} · {ip}").format(
                id=order.id, tariff=escape(order.tariff_name), ip=ip_text(order)
            ),
            " · ".join(parts),
            _("{price} / {months}").format(
                price=fmt(order.price_minor), months=months_text(order.period_months)
            ),
        ]
    )


def list_text(page: Page[Order], prefs: dict[str, object], fmt: PriceFormat) -> str:
    at = now()
    head = [
        _("📦 <b>Your orders</b>: {count}").format(count=page.total),
        _("Sorted by {key} {arrow}").format(
            key=sort_text(str(prefs["sort"])), arrow="↓" if prefs["desc"] else "↑"
        ),
    ]
    if prefs["query"]:
        head.append(_("Search: «{query}»").format(query=escape(str(prefs["query"]))))
    blocks = [order_block(order, at, fmt) for order in page.items]
    text = "\n".join(head) + "\n\n" + "\n\n".join(blocks)
    if page.page_count > 1:
        text += "\n\n" + _("Page {page} of {pages}").format(
            page=page.page_number, pages=page.page_count
        )
    return text


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


async def price_format(billing: Billing, account: Account) -> PriceFormat:
    """Amounts in the account's display currency (at the current rate, the exact base amount
    beside it), or in the base currency when they are the same or no rate is known."""
    if account.currency == account.base_currency:
        return PriceFormat(account.base_currency)
    return PriceFormat(account.base_currency, account.currency, await billing.get_rates())


# ---- alerts for stale or forged buttons (the "out of date" one: handlers.fallback) ----
async def alert(query: CallbackQuery, text: str) -> None:
    await query.answer(text, show_alert=True)


# ---- list, search, sort ----
async def show_orders(
    event: Message | CallbackQuery,
    billing: Billing,
    account: Account,
    state: FSMContext,
    *,
    page: int | None = None,
    notice: str | None = None,
) -> None:
    prefs = await _prefs(state)
    number = max(1, page or int(prefs["page"]))  # type: ignore[call-overload]
    result = await _page(billing, account, prefs, number)
    if not result.items and result.total:  # fewer orders than when this page was shown
        number = result.page_count
        result = await _page(billing, account, prefs, number)
    await _save_prefs(state, page=number)
    if result.total == 0 and prefs["query"]:
        text = _("🔍 No orders match «{query}».").format(query=escape(str(prefs["query"])))
        await show(event, text, no_match_kb(), notice)
    elif result.total == 0:
        text = _("📦 You have no orders yet. Order a server in the «New order» section.")
        await show(event, text, no_orders_kb(), notice)
    else:
        markup = orders_list_kb(result, searching=bool(prefs["query"]))
        fmt = await price_format(billing, account)
        await show(event, list_text(result, prefs, fmt), markup, notice)


async def _page(
    billing: Billing, account: Account, prefs: dict[str, object], number: int
) -> Page[Order]:
    return await billing.list_orders(
        account.id,
        query=prefs["query"],  # type: ignore[arg-type]
        sort=str(prefs["sort"]),
        descending=bool(prefs["desc"]),
        offset=(number - 1) * PAGE_SIZE,
        limit=PAGE_SIZE,
    )


async def cmd_orders(
    message: Message,
    command: CommandObject,
    billing: Billing,
    account: Account,
    state: FSMContext,
) -> None:
    """/orders — the list; /orders <query> — search by ID, tariff or IP."""
    await state.set_state(None)
    query = (command.args or "").strip()
    if len(query) > MAX_QUERY_LENGTH:
        await message.answer(too_long_text())
        return
    await _save_prefs(state, query=query or None, page=1)
    await show_orders(message, billing, account, state, page=1)


async def menu_orders(
    query: CallbackQuery, billing: Billing, account: Account, state: FSMContext
) -> None:
    await state.set_state(None)
    await _save_prefs(state, query=None, page=1)
    await show_orders(query, billing, account, state, page=1)


async def list_page(
    query: CallbackQuery,
    callback_data: OrdersCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
) -> None:
    await state.set_state(None)
    await show_orders(query, billing, account, state, page=callback_data.page or None)


async def list_search(query: CallbackQuery, state: FSMContext) -> None:
    await state.set_state(OrdersStates.search)
    text = _("🔍 Send an order ID, a tariff name or an IP address to search for:")
    await show(query, text, search_prompt_kb())


async def list_clear(
    query: CallbackQuery, billing: Billing, account: Account, state: FSMContext
) -> None:
    await _save_prefs(state, query=None, page=1)
    await show_orders(query, billing, account, state, page=1)


async def list_sort(query: CallbackQuery, state: FSMContext) -> None:
    prefs = await _prefs(state)
    text = _("↕️ Sort the orders by:")
    await show(query, text, sort_kb(str(prefs["sort"]), bool(prefs["desc"])))


def too_long_text() -> str:
    return _("The search text is too long: at most {limit} characters.").format(
        limit=MAX_QUERY_LENGTH
    )


async def search_entered(
    message: Message, billing: Billing, account: Account, state: FSMContext
) -> None:
    text = (message.text or "").strip()
    if not text:
        await message.answer(
            _("🔍 Send an order ID, a tariff name or an IP address to search for:"),
            reply_markup=search_prompt_kb(),
        )
        return
    if len(text) > MAX_QUERY_LENGTH:
        await message.answer(too_long_text(), reply_markup=search_prompt_kb())
        return
    await state.set_state(None)
    await _save_prefs(state, query=text, page=1)
    await show_orders(message, billing, account, state, page=1)


async def sort_chosen(
    query: CallbackQuery,
    callback_data: OrderSortCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
) -> None:
    if callback_data.key not in SORT_KEYS:
        await stale_button(query)
        return
    await _save_prefs(state, sort=callback_data.key, desc=callback_data.desc, page=1)
    await show_orders(query, billing, account, state, page=1)


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


def cancelled_text(order: Order) -> str:
    return _("Order #{id} is cancelled: it cannot be renewed or changed.").format(id=order.id)


async def _order(callback_data: OrderCb, billing: Billing, account: Account) -> Order:
    """The order of a button, re-read: NotFound (an alert) if it is not the caller's."""
    return await billing.get_order(account.id, callback_data.order_id)


async def order_view(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    await show_details(query, billing, await _order(callback_data, billing, account), account)


async def order_renew(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await _order(callback_data, billing, account)
    await show_renew_periods(query, order, billing, account)


async def order_change(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await _order(callback_data, billing, account)
    await show_change_options(query, order, billing, account)


async def order_cancel(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    await show_cancel(query, await _order(callback_data, billing, account), account)


async def order_auto_on(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await _order(callback_data, billing, account)
    await toggle_auto_renew(query, order, billing, account, enabled=True)


async def order_auto_off(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await _order(callback_data, billing, account)
    await toggle_auto_renew(query, order, billing, account, enabled=False)


async def order_resume(
    query: CallbackQuery, callback_data: OrderCb, billing: Billing, account: Account
) -> None:
    order = await _order(callback_data, billing, account)
    if not order.cancel_at_period_end or order.status == CANCELLED:
        await alert(query, _("The order is not set to be cancelled."))
        return
    order = await billing.resume_order(account.id, order.id)
    await show_details(query, billing, order, account, _("The order will not be cancelled."))


async def toggle_auto_renew(
    query: CallbackQuery, order: Order, billing: Billing, account: Account, enabled: bool
) -> None:
    if order.status == CANCELLED or (enabled and order.cancel_at_period_end):
        await alert(query, _("Auto-renew cannot be turned on for an order that is cancelled."))
        return
    order = await billing.set_order_auto_renew(account.id, order.id, enabled)
    notice = _("Auto-renew is on.") if enabled else _("Auto-renew is off.")
    await show_details(query, billing, order, account, notice)


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
    if quote.missing_minor:
        lines += shortfall_lines(quote, fmt)
    else:
        lines.append(
            _("The price is debited from the balance ({balance}).").format(
                balance=fmt(quote.balance_minor)
            )
        )
    return "\n".join(lines)


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


async def cancel_action(
    query: CallbackQuery, callback_data: CancelCb, billing: Billing, account: Account
) -> None:
    order = await billing.get_order(account.id, callback_data.order_id)
    if order.status == CANCELLED:
        notice = _("Order #{id} is already cancelled.").format(id=order.id)
        await show_details(query, billing, order, account, notice)
        return
    if order.status == PENDING or callback_data.when not in ("end", "now"):
        await stale_button(query)
        return
    if callback_data.when == "end":
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
    else:
        order = await billing.cancel_order(account.id, order.id, immediately=True)
        notice = _("Order #{id} is cancelled.").format(id=order.id)
    await show_details(query, billing, order, account, notice)


def create_router() -> Router:
    router = Router(name="orders")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(cmd_orders, Command("orders"))
    router.message.register(search_entered, OrdersStates.search, F.text, ~F.text.startswith("/"))
    cb = router.callback_query
    cb.register(menu_orders, MenuCb.filter(F.section == "orders"))
    cb.register(list_page, OrdersCb.filter(F.action == OrdersAction.PAGE))
    cb.register(list_search, OrdersCb.filter(F.action == OrdersAction.SEARCH))
    cb.register(list_clear, OrdersCb.filter(F.action == OrdersAction.CLEAR))
    cb.register(list_sort, OrdersCb.filter(F.action == OrdersAction.SORT))
    cb.register(sort_chosen, OrderSortCb.filter())
    cb.register(order_view, OrderCb.filter(F.action == OrderAction.VIEW))
    cb.register(order_renew, OrderCb.filter(F.action == OrderAction.RENEW))
    cb.register(order_change, OrderCb.filter(F.action == OrderAction.CHANGE))
    cb.register(order_cancel, OrderCb.filter(F.action == OrderAction.CANCEL))
    cb.register(order_auto_on, OrderCb.filter(F.action == OrderAction.AUTO_ON))
    cb.register(order_auto_off, OrderCb.filter(F.action == OrderAction.AUTO_OFF))
    cb.register(order_resume, OrderCb.filter(F.action == OrderAction.RESUME))
    cb.register(renew_ask, RenewCb.filter(F.action == RenewAction.ASK))
    cb.register(renew_pay, RenewCb.filter(F.action == RenewAction.PAY))
    cb.register(change_ask, ChangeCb.filter(F.action == ChangeAction.ASK))
    cb.register(change_do, ChangeCb.filter(F.action == ChangeAction.DO))
    cb.register(cancel_action, CancelCb.filter())
    return router
