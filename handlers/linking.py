"""Linking a Telegram user to a client of the external billing (WHMCS): `/link` (the e-mail of
the account, then the one-time code sent to it), the deep link `/start <token>`, and `/unlink`
(also in Settings). With the embedded billing every account is its own client: linking is never
offered (`is_linked` is True) and these commands only say so. No password is ever asked for.

This router runs before the menu's, so `/start <token>` reaches `start_with_token` first; a
`/start` without a payload goes on to the menu."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, CommandObject, CommandStart
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.common import show
from handlers.errors import not_linked_text
from handlers.menu import cmd_start, show_main_menu
from keyboards.linking import (
    LinkAction,
    LinkCb,
    cancel_link_kb,
    link_kb,
    unlink_confirm_kb,
)
from keyboards.menu import back_to_menu_kb
from services.billing import Billing
from services.contracts.accounts import LinkCodeLetter
from services.contracts.common import Account
from services.errors import ValidationFailed
from services.validation import ascii_digits

CODE_LENGTH = 6
TEXT_MAX = 320  # an e-mail address is at most 254 characters; more is not one


class LinkForm(StatesGroup):
    email = State()
    code = State()


async def _linked_to_client(billing: Billing, account: Account) -> bool:
    """Linked to a client of an external billing (the embedded billing links nobody)."""
    return await billing.billing_client_id(account.id) is not None


# ---- /link -------------------------------------------------------------------------------------
async def start_link(
    event: Message | CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    if await billing.is_linked(account.id):
        await state.clear()
        await show(event, _("Your Telegram is already linked to your account."), back_to_menu_kb())
        return
    await state.set_state(LinkForm.email)
    await show(
        event,
        _(
            "✉️ Send the e-mail address of your account at the billing. "
            "We will send a one-time code to it."
        ),
        cancel_link_kb(),
    )


def link_code_letter() -> LinkCodeLetter:
    """The code e-mail in the user's language ({code} and {minutes} are filled in later)."""
    return LinkCodeLetter(
        subject=_("Your Telegram link code"),
        html="<p>{}</p><p>{}</p>".format(
            _("Your code to link Telegram to your account: <b>{code}</b>"),
            _("It is valid for {minutes} minutes. If you did not ask for it, ignore this e-mail."),
        ),
    )


async def email_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account
) -> None:
    text = (message.text or "").strip()
    try:
        if len(text) > TEXT_MAX:
            raise ValidationFailed("email_invalid")
        await billing.start_linking(account.id, text, letter=link_code_letter())
    except ValidationFailed:
        await message.answer(
            _("This does not look like an e-mail address. Send it again, or /cancel."),
            reply_markup=cancel_link_kb(),
        )
        return
    await state.set_state(LinkForm.code)
    await message.answer(
        _(
            "If this address belongs to an account, a one-time code is on its way to it. "
            "Send the code here (it is valid for 15 minutes)."
        ),
        reply_markup=cancel_link_kb(),
    )


async def code_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account
) -> None:
    code = (message.text or "").strip()
    if not (len(code) == CODE_LENGTH and ascii_digits(code)):
        await message.answer(_("The code is 6 digits. Send it again, or /cancel."))
        return
    check = await billing.confirm_linking(account.id, code)
    if check.status == "ok":
        await _linked(message, state, billing, account)
        return
    if check.status == "wrong":
        await message.answer(
            _("Wrong code. Attempts left: {left}.").format(left=check.attempts_left)
        )
        return
    await state.clear()
    if check.status == "exhausted":
        text = _("No attempts left. Start again with /link.")
    else:  # expired, none
        text = _("The code has expired. Start again with /link.")
    await message.answer(text, reply_markup=link_kb())


async def _linked(message: Message, state: FSMContext, billing: Billing, account: Account) -> None:
    fresh = await billing.get_account(account.id)
    await message.answer(_("✅ Your Telegram is linked to your account."))
    await show_main_menu(message, state, fresh, billing=billing)


async def cancel_link(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    await state.clear()
    await show_main_menu(query, state, account, notice=_("Cancelled."), billing=billing)


# ---- /start <token> ----------------------------------------------------------------------------
async def start_with_token(
    message: Message,
    command: CommandObject,
    state: FSMContext,
    billing: Billing,
    account: Account,
    account_created: bool,
) -> None:
    token = command.args or ""
    if await billing.is_linked(account.id) and not await _linked_to_client(billing, account):
        # the embedded billing: nothing to link, a /start with a payload is a /start
        await cmd_start(message, state, account, account_created, billing=billing)
        return
    await state.clear()
    if await billing.link_with_token(account.id, token):
        await _linked(message, state, billing, account)
        return
    await message.answer(
        _("This link is invalid, expired or already used. Ask for a new one, or link by e-mail."),
        reply_markup=None if await billing.is_linked(account.id) else link_kb(),
    )


# ---- /unlink -----------------------------------------------------------------------------------
async def ask_unlink(
    event: Message | CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    await state.clear()
    if not await _linked_to_client(billing, account):
        await show(event, _("Your Telegram is not linked to a billing account."), back_to_menu_kb())
        return
    await show(
        event,
        _(
            "Unlink this Telegram from your billing account? The bot will stop showing it "
            "until you link it again."
        ),
        unlink_confirm_kb(),
    )


async def unlink(query: CallbackQuery, billing: Billing, account: Account) -> None:
    if not await _linked_to_client(billing, account):
        await show(query, _("Your Telegram is not linked to a billing account."), back_to_menu_kb())
        return
    await billing.unlink(account.id)
    await show(query, not_linked_text(), link_kb(), _("Unlinked."))


def create_router() -> Router:
    router = Router(name="linking")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    msg, cb = router.message, router.callback_query
    msg.register(start_with_token, CommandStart(deep_link=True))
    msg.register(start_link, Command("link"))
    msg.register(ask_unlink, Command("unlink"))
    msg.register(email_entered, LinkForm.email, F.text, ~F.text.startswith("/"))
    msg.register(code_entered, LinkForm.code, F.text, ~F.text.startswith("/"))
    cb.register(start_link, LinkCb.filter(F.action == LinkAction.START))
    cb.register(cancel_link, LinkCb.filter(F.action == LinkAction.CANCEL))
    cb.register(ask_unlink, LinkCb.filter(F.action == LinkAction.UNLINK))
    cb.register(unlink, LinkCb.filter(F.action == LinkAction.UNLINK_YES))
    return router
