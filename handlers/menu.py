"""Main menu, /start, /help, /cancel and the language switch."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandStart, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import display_balance, display_rates, show
from handlers.errors import not_linked_text
from handlers.web_links import cabinet_url
from keyboards.callbacks import LangCb, MenuCb
from keyboards.linking import link_kb
from keyboards.menu import LANGUAGE_NAMES, back_to_menu_kb, language_kb, main_menu_kb
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.payments import Rates


def menu_balance(account: Account, rates: Rates | None) -> str:
    if not account.balance_known:
        return _("unavailable right now")
    return display_balance(account.balance_minor, account, rates)


def main_menu_text(account: Account, rates: Rates | None = None) -> str:
    """`rates` are needed only when the account's display currency is not the base one."""
    return _(
        "💼 <b>Personal cabinet</b>\n"
        "Login: <code>{login}</code>\n"
        "Balance: <b>{balance}</b>\n\n"
        "Choose a section:"
    ).format(login=account.login, balance=menu_balance(account, rates))


async def show_main_menu(
    event: Message | CallbackQuery,
    state: FSMContext,
    account: Account,
    notice: str | None = None,
    billing: Billing | None = None,
    settings: Settings | None = None,
) -> None:
    """`settings`: with the web side on, the menu gets the Mini App's button."""
    await state.clear()
    if not account.linked:
        # In front of an external billing, a Telegram user not linked to a client yet: the
        # explanation and the linking button instead of an empty cabinet.
        await show(event, not_linked_text(), link_kb(), notice)
        return
    rates = await display_rates(billing, account) if billing is not None else None
    cabinet = cabinet_url(settings) if settings is not None else None
    await show(event, main_menu_text(account, rates), main_menu_kb(cabinet), notice)


async def cmd_start(
    message: Message,
    state: FSMContext,
    account: Account,
    account_created: bool,
    billing: Billing | None = None,
    settings: Settings | None = None,
) -> None:
    if account_created and account.linked:  # an unlinked one has no billing account yet
        await message.answer(
            _("👋 Welcome! Your billing account <code>{login}</code> is ready.").format(
                login=account.login
            )
        )
    await show_main_menu(message, state, account, billing=billing, settings=settings)


def help_text() -> str:
    return _(
        "❓ <b>Help</b>\n\n"
        "/menu — main menu\n"
        "/orders — your orders\n"
        "/neworder — order a server\n"
        "/invoices — invoices\n"
        "/history — payment history\n"
        "/balance — balance in all currencies\n"
        "/topup — top up the balance\n"
        "/tickets — support tickets\n"
        "/newticket — write to support\n"
        "/settings — profile and settings\n"
        "/language — interface language\n"
        "/cancel — leave the current dialog"
    )


async def cmd_help(event: Message | CallbackQuery) -> None:
    await show(event, help_text(), back_to_menu_kb())


async def cmd_cancel(
    message: Message,
    state: FSMContext,
    account: Account,
    billing: Billing | None = None,
    settings: Settings | None = None,
) -> None:
    had_dialog = await state.get_state() is not None
    await message.answer(
        _("Cancelled. Nothing was changed.") if had_dialog else _("There is nothing to cancel.")
    )
    await show_main_menu(message, state, account, billing=billing, settings=settings)


async def cmd_language(event: Message | CallbackQuery, i18n: I18n) -> None:
    await show(event, _("🌐 Choose the interface language:"), language_kb(i18n.current_locale))


async def set_language(
    query: CallbackQuery,
    callback_data: LangCb,
    billing: Billing,
    account: Account,
    state: FSMContext,
    i18n: I18n,
    settings: Settings | None = None,
) -> None:
    if callback_data.code not in LANGUAGE_NAMES:
        await query.answer(_("This language is not available."), show_alert=True)
        return
    account = await billing.set_language(account.id, callback_data.code)
    with i18n.use_locale(callback_data.code):
        notice = _("Language: English")
        await show_main_menu(query, state, account, notice, billing, settings)


async def menu_button(
    query: CallbackQuery,
    state: FSMContext,
    account: Account,
    billing: Billing | None = None,
    settings: Settings | None = None,
) -> None:
    await show_main_menu(query, state, account, billing=billing, settings=settings)


def create_router() -> Router:
    router = Router(name="menu")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(cmd_start, CommandStart())
    router.message.register(cmd_cancel, Command("cancel"), StateFilter("*"))
    router.message.register(show_main_menu, Command("menu"))
    router.message.register(cmd_help, Command("help"))
    router.message.register(cmd_language, Command("language"))
    router.callback_query.register(menu_button, MenuCb.filter(F.section == "main"))
    router.callback_query.register(cmd_help, MenuCb.filter(F.section == "help"))
    router.callback_query.register(cmd_language, MenuCb.filter(F.section == "language"))
    router.callback_query.register(set_language, LangCb.filter())
    return router
