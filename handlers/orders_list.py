"""The Orders list: paginated, searched (by ID, tariff or IP) and sorted; the sort, search and
page are remembered for the session."""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime
from html import escape

from aiogram import F, Router
from aiogram.filters import Command, CommandObject
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.common import date, show
from handlers.orders_common import ip_text, now, price_format
from keyboards.callbacks import MenuCb
from keyboards.orders import (
    OrdersAction,
    OrdersCb,
    OrderSortCb,
    OrderSortKey,
    PriceFormat,
    days_left_text,
    months_text,
    no_match_kb,
    no_orders_kb,
    orders_list_kb,
    search_prompt_kb,
    sort_kb,
    sort_text,
    status_text,
)
from services.billing import Billing
from services.contracts.common import Account, Page
from services.contracts.orders import ACTIVE, CANCELLED, PENDING, SORT_KEYS, Order

PAGE_SIZE = 5
MAX_QUERY_LENGTH = 64
PREFS_DESTINY = "orders"


class OrdersStates(StatesGroup):
    search = State()


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
            price_line(order, fmt),
        ]
    )


def price_line(order: Order, fmt: PriceFormat) -> str:
    """«€14.70 / 3 months · €4.90 a month»: the monthly price too, which the list sorts by."""
    line = _("{price} / {months}").format(
        price=fmt(order.price_minor), months=months_text(order.period_months)
    )
    if order.period_months > 1:
        line += " · " + _("{price} a month").format(price=fmt(order.monthly_price_minor))
    return line


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
    await show(query, text, sort_kb(OrderSortKey(str(prefs["sort"])), bool(prefs["desc"])))


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
    # A key no OrderSortKey has is refused at unpack: the fallback answers "out of date".
    await _save_prefs(state, sort=callback_data.key.value, desc=callback_data.desc, page=1)
    await show_orders(query, billing, account, state, page=1)


def create_router() -> Router:
    router = Router(name="orders_list")
    router.message.register(cmd_orders, Command("orders"))
    router.message.register(search_entered, OrdersStates.search, F.text, ~F.text.startswith("/"))
    cb = router.callback_query
    cb.register(menu_orders, MenuCb.filter(F.section == "orders"))
    cb.register(list_page, OrdersCb.filter(F.action == OrdersAction.PAGE))
    cb.register(list_search, OrdersCb.filter(F.action == OrdersAction.SEARCH))
    cb.register(list_clear, OrdersCb.filter(F.action == OrdersAction.CLEAR))
    cb.register(list_sort, OrdersCb.filter(F.action == OrdersAction.SORT))
    cb.register(sort_chosen, OrderSortCb.filter())
    return router
