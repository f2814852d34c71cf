"""What the Settings dialogs share: the FSM states, the screen renderer, the helpers of the
edit dialogs, and the guards of every dialog (a command leaves it, a non-text answer is
refused), which the Settings router includes last."""

from __future__ import annotations

import logging

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import StateFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from handlers.common import show
from handlers.settings_texts import invalid_text, screen
from keyboards.settings import SettingsAction, SettingsCb
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.profile import Profile
from services.email import Mailer, UnconfiguredMailer
from services.errors import ValidationFailed

log = logging.getLogger(__name__)

FIELD_GROUP = {
    "last_name": "profile",
    "first_name": "profile",
    "email": "profile",
    "phone": "profile",
    "email_invoices": "mails",
    "email_support": "mails",
    "email_abuse": "mails",
    "region": "address",
    "city": "address",
    "postcode": "address",
    "address": "address",
}

# The answer to a dialog: text that is not a command (a command leaves the dialog; raw_state is
# read once per update, so the value handlers must not match it either).
VALUE_TEXT = F.text & ~F.text.startswith("/")


class SettingsForm(StatesGroup):
    value = State()  # a text field; data: field
    threshold = State()
    email_code = State()
    phone = State()
    phone_code = State()
    company_name = State()
    company_tax = State()  # data: company_name
    code_word = State()
    ip_list = State()
    ip_confirm = State()  # data: ip (normalised entries)
    password_new = State()
    password_confirm = State()  # data: password_hash (never the password itself)
    fill = State()  # the guided flow; data: field, total, resume
    country = State()  # data: group (the screen to return to)


# The screen each dialog edits: /cancel goes back to it ("" is the settings root).
DIALOG_GROUP = {
    SettingsForm.threshold.state: "general",
    SettingsForm.email_code.state: "profile",
    SettingsForm.phone.state: "profile",
    SettingsForm.phone_code.state: "profile",
    SettingsForm.company_name.state: "profile",
    SettingsForm.company_tax.state: "profile",
    SettingsForm.code_word.state: "security",
    SettingsForm.ip_list.state: "security",
    SettingsForm.ip_confirm.state: "security",
    SettingsForm.password_new.state: "security",
    SettingsForm.password_confirm.state: "security",
    SettingsForm.fill.state: "",
}


def dialog_group(state: str | None, data: dict[str, object]) -> str:
    """The screen the dialog in `state` edits (a text field's own group; the country's is
    where it was started from)."""
    if state == SettingsForm.value.state:
        return FIELD_GROUP.get(str(data.get("field", "")), "")
    if state == SettingsForm.country.state:
        return str(data.get("group", "address"))
    return DIALOG_GROUP.get(state or "", "")


def email_confirmable(mailer: Mailer | None) -> bool:
    """Can the bot send the confirmation code? Not without SMTP (None: not known here)."""
    return not isinstance(mailer, UnconfiguredMailer)


async def render(
    event: Message | CallbackQuery,
    group: str,
    profile: Profile,
    i18n: I18n,
    header: str | None = None,
    notice: str | None = None,
    *,
    mailer: Mailer | None = None,
) -> None:
    """`mailer` decides whether the profile screen offers to confirm the e-mail."""
    text, markup = screen(group, profile, i18n.current_locale, email_confirmable(mailer))
    await show(event, f"{header}\n\n{text}" if header else text, markup, notice)


async def delete_quietly(message: Message) -> None:
    """Remove a message carrying a secret. A failure (already gone, too old, Telegram
    unavailable) changes nothing: the update goes on as if it had been deleted."""
    try:
        await message.delete()
    except TelegramAPIError as exc:  # refused, flood control, 5xx, a dropped connection
        log.info(
            "could not delete a secret-carrying message in chat %s: %s",
            message.chat.id,
            type(exc).__name__,
        )


# ---- the edit buttons: one handler per kind of value (SettingsCb(EDIT, value=field)) ---------
def edit_filter(*fields: str) -> CallbackQueryFilter:
    """The edit button of these fields; an edit of any other value is out of date (fallback)."""
    return SettingsCb.filter((F.action == SettingsAction.EDIT) & F.value.in_(fields))


async def start_editing(state: FSMContext, billing: Billing, account: Account) -> Profile:
    """Leave any dialog; the profile as it is now, for the prompt."""
    profile = await billing.get_profile(account.id)
    await state.clear()
    return profile


# ---- answers ----------------------------------------------------------------------------------
async def save_text_field(billing: Billing, account_id: int, name: str, text: str) -> Profile:
    if name == "email":
        return await billing.set_email(account_id, text)
    return await billing.set_profile_field(account_id, name, text)


async def ask_again(message: Message, error: ValidationFailed) -> None:
    await message.answer(
        invalid_text(error) + "\n" + _("Nothing was saved. Send another value or /cancel.")
    )


async def command_in_dialog(message: Message, state: FSMContext) -> None:
    """Another command leaves the edit unsaved and goes to its own section."""
    await state.clear()
    raise SkipHandler


async def not_text(message: Message) -> None:
    await message.answer(_("Please send the value as text, or /cancel to leave."))


def create_router() -> Router:
    """The guards of the dialogs; included after every other Settings router."""
    router = Router(name="settings.dialogs")
    dialog_states = StateFilter(
        SettingsForm.value,
        SettingsForm.threshold,
        SettingsForm.email_code,
        SettingsForm.phone,
        SettingsForm.phone_code,
        SettingsForm.company_name,
        SettingsForm.company_tax,
        SettingsForm.ip_list,
        SettingsForm.ip_confirm,
        SettingsForm.fill,
        SettingsForm.country,
    )
    router.message.register(command_in_dialog, dialog_states, F.text.startswith("/"))
    router.message.register(not_text, StateFilter(SettingsForm), ~F.text)
    return router
