"""Settings: the country, which the customer sets once while it is empty (typed as its ISO code
or its name, then confirmed); a set country changes through a ticket only (the service refuses
a second setting with AlreadyDone)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from babel import Locale

from handlers.common import locale, show
from handlers.fallback import stale_button
from handlers.settings_common import VALUE_TEXT, SettingsForm, ask_again, render, start_editing
from handlers.settings_texts import country_confirm_text, country_prompt, country_saved_line
from keyboards.settings import GROUPS, SettingsAction, SettingsCb, country_confirm_kb, prompt_kb
from services.billing import Billing
from services.contracts.common import Account
from services.errors import ValidationFailed
from services.validation import validate_country


def country_code(text: str) -> str:
    """A typed country: its two-letter code, or its name in the customer's language or in
    English (Babel's names, the ones the screens show)."""
    value = " ".join(text.split())
    if len(value) == 2:
        return validate_country(value)
    wanted = value.casefold()
    for language in dict.fromkeys((locale(), "en")):
        for code, name in Locale.parse(language).territories.items():
            if len(code) == 2 and name.casefold() == wanted:
                return validate_country(code)
    raise ValidationFailed("country_invalid")


async def edit_country(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
) -> None:
    group = callback_data.value if callback_data.value in GROUPS else "address"
    profile = await start_editing(state, billing, account)
    if profile.country:  # set meanwhile: only a ticket changes it now
        await stale_button(query)
        return
    await state.set_state(SettingsForm.country)
    await state.update_data(group=group)
    await show(query, country_prompt(), prompt_kb(group))


async def country_entered(message: Message, state: FSMContext) -> None:
    try:
        code = country_code(message.text or "")
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    group = str((await state.get_data()).get("group", "address"))
    await message.answer(country_confirm_text(code), reply_markup=country_confirm_kb(code, group))


async def country_confirmed(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    group = str((await state.get_data()).get("group", "address"))
    await state.clear()
    profile = await billing.set_country(account.id, callback_data.value)  # once: AlreadyDone
    line = country_saved_line(profile.country or callback_data.value)
    await render(query, group, profile, i18n, line, notice=line)


def create_router() -> Router:
    router = Router(name="settings.country")
    router.callback_query.register(
        edit_country, SettingsCb.filter(F.action == SettingsAction.COUNTRY)
    )
    router.callback_query.register(
        country_confirmed, SettingsCb.filter(F.action == SettingsAction.COUNTRY_SAVE)
    )
    router.message.register(country_entered, SettingsForm.country, VALUE_TEXT)
    return router
