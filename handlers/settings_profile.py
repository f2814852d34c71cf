"""Settings: the profile's text fields (name, e-mails, postal address), the profile type (an
individual, or a company with its name and tax number) and the guided flow that asks, one by
one, the fields still required for payments."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardButton, Message, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.balance import resume_payment
from handlers.common import show
from handlers.fallback import stale_button
from handlers.settings_common import (
    FIELD_GROUP,
    VALUE_TEXT,
    SettingsForm,
    ask_again,
    edit_filter,
    render,
    save_text_field,
    start_editing,
)
from handlers.settings_contacts import send_email_code
from handlers.settings_texts import (
    edit_prompt,
    fill_prompt,
    join_lines,
    missing_names,
    profile_type_text,
    saved_line,
)
from keyboards.settings import (
    SettingsAction,
    SettingsCb,
    profile_type_kb,
    prompt_kb,
    telegram_name_button,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.profile import OPTIONAL_FIELDS, TEXT_FIELDS, Profile
from services.email import Mailer
from services.errors import ValidationFailed
from services.validation import validate_name, validate_text

NAME_FIELDS = ("last_name", "first_name")


# ---- text fields ------------------------------------------------------------------------------
def telegram_name(user: User | None, name: str) -> str | None:
    """The customer's own first or last name in Telegram, when it is a valid name."""
    if user is None or name not in NAME_FIELDS:
        return None
    raw = user.first_name if name == "first_name" else user.last_name
    try:
        return validate_name(raw or "")
    except ValidationFailed:
        return None  # empty, or emoji and digits a profile name may not have


def name_offer(user: User | None, name: str, profile: Profile) -> InlineKeyboardButton | None:
    """While the profile's name is empty: a button taking it from Telegram with one tap."""
    value = telegram_name(user, name) if not getattr(profile, name, None) else None
    return telegram_name_button(name, value) if value else None


async def edit_text_field(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
) -> None:
    name = callback_data.value
    profile = await start_editing(state, billing, account)
    await state.set_state(SettingsForm.value)
    await state.update_data(field=name)
    current = getattr(profile, name)
    clear = name if name in OPTIONAL_FIELDS and current else None
    offer = name_offer(query.from_user, name, profile)
    await show(query, edit_prompt(name, current), prompt_kb(FIELD_GROUP[name], clear, offer))


async def value_entered(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    name = (await state.get_data()).get("field", "")
    if name not in FIELD_GROUP:
        await state.clear()
        return
    try:
        profile = await save_text_field(billing, account.id, name, message.text or "")
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    await state.clear()
    value = getattr(profile, name)
    if name == "email" and not profile.email_confirmed:
        line = saved_line(name, value)
        await send_email_code(message, state, billing, account, mailer, i18n, line)
        return
    await render(message, FIELD_GROUP[name], profile, i18n, saved_line(name, value), mailer=mailer)


async def telegram_name_taken(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    settings: Settings,
    mailer: Mailer,
) -> None:
    """The one-tap answer to the name prompt (an edit or a step of the guided flow)."""
    name = callback_data.value
    value = telegram_name(query.from_user, name)
    current = await state.get_state()
    data = await state.get_data()
    asked = current in (SettingsForm.value.state, SettingsForm.fill.state)
    if value is None or not asked or data.get("field") != name:
        await stale_button(query)
        return
    profile = await billing.set_profile_field(account.id, name, value)
    line = saved_line(name, getattr(profile, name))
    if current == SettingsForm.fill.state:
        await fill_next(query, state, billing, account, i18n, settings, profile, line)
        return
    await state.clear()
    await render(query, FIELD_GROUP[name], profile, i18n, line, notice=_("✅ Saved"), mailer=mailer)


# ---- profile type -----------------------------------------------------------------------------
async def edit_profile_type(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await start_editing(state, billing, account)
    text = _(
        "Choose the profile type. For a company we ask its name and tax number; payments "
        "are blocked until our staff verify them."
    )
    await show(query, text, profile_type_kb(profile.profile_type))


async def profile_type_chosen(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    await state.clear()
    if callback_data.value == "individual":
        profile = await billing.set_individual(account.id)
        line = _("✅ Profile type saved: <b>{ptype}</b>").format(ptype=profile_type_text(profile))
        await render(query, "profile", profile, i18n, line, notice=_("✅ Saved"), mailer=mailer)
        return
    if callback_data.value != "company":
        await stale_button(query)
        return
    await state.set_state(SettingsForm.company_name)
    text = _(
        "🏢 Send the company's full name (up to 256 characters).\n\n"
        "/cancel — leave without changes."
    )
    await show(query, text, prompt_kb("profile"))


async def company_name_entered(message: Message, state: FSMContext) -> None:
    try:
        name = validate_text("company_name", message.text or "", required=True)
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    await state.update_data(company_name=name)
    await state.set_state(SettingsForm.company_tax)
    await message.answer(
        _("🏢 Now send the company's tax number (4 to 64 letters or digits)."),
        reply_markup=prompt_kb("profile"),
    )


async def company_tax_entered(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    name = (await state.get_data()).get("company_name", "")
    try:
        profile = await billing.set_company(account.id, name, message.text or "")
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    await state.clear()
    line = _(
        "✅ Profile type saved: <b>{ptype}</b>\n"
        "⏳ Payments are blocked until our staff verify your company details."
    ).format(ptype=profile_type_text(profile))
    await render(message, "profile", profile, i18n, line, mailer=mailer)


# ---- the guided flow for missing required fields ----------------------------------------------
async def fill_start(
    event: Message | CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    settings: Settings,
    callback_data: SettingsCb | None = None,
) -> None:
    await state.clear()
    profile = await billing.get_profile(account.id)
    resume = callback_data.value if callback_data is not None else ""  # the payment gate's
    if not profile.missing:  # filled in meanwhile: straight back to the payment, if any
        if not await resume_payment(event, resume, billing, account, state, settings):
            await render(event, "", profile, i18n)
        return
    await state.set_state(SettingsForm.fill)
    total = len(profile.missing)
    await state.update_data(field=profile.missing[0], total=total, resume=resume)
    intro = _("To pay, we still need: {fields}.").format(fields=missing_names(profile.missing))
    first = profile.missing[0]
    offer = name_offer(event.from_user, first, profile)
    await show(event, join_lines(intro, fill_prompt(first, 1, total)), prompt_kb("", None, offer))


async def fill_entered(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    settings: Settings,
) -> None:
    name = (await state.get_data()).get("field", "")
    try:
        profile = await save_text_field(billing, account.id, name, message.text or "")
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    line = saved_line(name, getattr(profile, name))
    await fill_next(message, state, billing, account, i18n, settings, profile, line)


async def fill_next(
    event: Message | CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    settings: Settings,
    profile: Profile,
    line: str,
) -> None:
    """After a step of the guided flow: the next missing field, or the end of the flow."""
    data = await state.get_data()
    total = int(data.get("total", 1))
    if profile.missing:
        following = profile.missing[0]
        await state.update_data(field=following)
        step = max(1, total - len(profile.missing) + 1)
        text = join_lines(line, fill_prompt(following, step, max(total, step)))
        markup = prompt_kb("", None, name_offer(event.from_user, following, profile))
        if isinstance(event, CallbackQuery):
            await show(event, text, markup, notice=_("✅ Saved"))
        else:
            await event.answer(text, reply_markup=markup)
        return
    await state.clear()
    # Started by the payment gate: back to the top-up or the invoice being paid.
    resume = str(data.get("resume") or "")
    if not await resume_payment(event, resume, billing, account, state, settings, line):
        await render(event, "", profile, i18n, line)


def create_router() -> Router:
    router = Router(name="settings.profile")
    msg, cb = router.message, router.callback_query
    cb.register(edit_text_field, edit_filter(*TEXT_FIELDS, "email"))
    cb.register(edit_profile_type, edit_filter("profile_type"))
    cb.register(profile_type_chosen, SettingsCb.filter(F.action == SettingsAction.PROFILE_TYPE))
    cb.register(fill_start, SettingsCb.filter(F.action == SettingsAction.FILL))
    cb.register(telegram_name_taken, SettingsCb.filter(F.action == SettingsAction.TG_NAME))
    msg.register(value_entered, SettingsForm.value, VALUE_TEXT)
    msg.register(company_name_entered, SettingsForm.company_name, VALUE_TEXT)
    msg.register(company_tax_entered, SettingsForm.company_tax, VALUE_TEXT)
    msg.register(fill_entered, SettingsForm.fill, VALUE_TEXT)
    return router
