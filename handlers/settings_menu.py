"""Settings: the screens (the root and its groups), Cancel and Clear, the on/off toggles and the
General group's values (low-balance alert, currency, language)."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, InlineKeyboardMarkup, Message, ReplyKeyboardRemove
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import show
from handlers.fallback import stale_button
from handlers.settings_common import (
    FIELD_GROUP,
    VALUE_TEXT,
    SettingsForm,
    ask_again,
    dialog_group,
    edit_filter,
    render,
    start_editing,
)
from handlers.settings_texts import (
    balance_shown,
    ip_list_text,
    on_off,
    saved_line,
    screen,
    threshold_text,
)
from keyboards.callbacks import MenuCb
from keyboards.linking import unlink_button
from keyboards.menu import LANGUAGE_NAMES
from keyboards.settings import (
    SettingsAction,
    SettingsCb,
    currency_kb,
    language_kb,
    prompt_kb,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.profile import FLAGS, OPTIONAL_FIELDS
from services.email import Mailer
from services.errors import ValidationFailed
from services.money import parse_amount

OFF_WORDS = {"off", "0", "-", "no", "выкл", "выключить", "нет"}


# ---- screens ----------------------------------------------------------------------------------
async def cmd_settings(
    event: Message | CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    await state.clear()
    await render_root(event, billing, account, i18n)


async def render_root(
    event: Message | CallbackQuery, billing: Billing, account: Account, i18n: I18n
) -> None:
    """The settings root; an account linked to a client of an external billing (WHMCS) gets an
    "Unlink" entry too (the embedded billing links nobody)."""
    profile = await billing.get_profile(account.id)
    text, markup = screen("", profile, i18n.current_locale)
    if await billing.billing_client_id(account.id) is not None:
        rows = [*markup.inline_keyboard]
        rows.insert(max(len(rows) - 1, 0), [unlink_button()])  # above "Main menu"
        markup = InlineKeyboardMarkup(inline_keyboard=rows)
    await show(event, text, markup)


async def open_group(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    await state.clear()
    if not callback_data.value:
        await render_root(query, billing, account, i18n)
        return
    profile = await billing.get_profile(account.id)
    await render(query, callback_data.value, profile, i18n, mailer=mailer)


async def cancel_edit(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    await state.clear()
    profile = await billing.get_profile(account.id)
    cancelled = _("Cancelled. Nothing was changed.")
    await render(query, callback_data.value, profile, i18n, cancelled, mailer=mailer)


async def cancel_command(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    """/cancel in a settings dialog: back to the screen being edited, not the main menu."""
    current = await state.get_state()
    group = dialog_group(current, await state.get_data())
    await state.clear()
    # The phone dialog put up the "share my contact" keyboard: take it down.
    remove = ReplyKeyboardRemove() if current == SettingsForm.phone.state else None
    await message.answer(_("Cancelled. Nothing was changed."), reply_markup=remove)
    if group:
        await render(message, group, await billing.get_profile(account.id), i18n, mailer=mailer)
    else:
        await render_root(message, billing, account, i18n)


async def toggle(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    flag = callback_data.value
    if flag not in FLAGS:
        await stale_button(query)
        return
    await state.clear()
    current = await billing.get_profile(account.id)
    profile = await billing.set_flag(account.id, flag, not getattr(current, flag))
    labels = {
        "newsletter": _("Newsletter"),
        "auto_renew_default": _("Auto-renewal of new orders"),
        "pay_without_auth": _("Payment without authorization"),
        "show_last_ip": _("Show last IP"),
    }
    line = _("✅ {setting}: {value}").format(
        setting=labels[flag], value=on_off(getattr(profile, flag))
    )
    group = "security" if flag == "show_last_ip" else "general"
    await render(query, group, profile, i18n, line, notice=line)


async def clear_field(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    name = callback_data.value
    await state.clear()
    if name == "threshold":
        current = await billing.get_profile(account.id)
        profile = await billing.set_low_balance_threshold(account.id, None, current.currency)
        line = _("✅ Low-balance alert: {value}").format(value=threshold_text(profile))
        await render(query, "general", profile, i18n, line, notice=line)
    elif name == "ip_allowlist":
        profile = await billing.set_ip_allowlist(account.id, [])
        line = _("✅ IP allow-list saved: {value}").format(value=ip_list_text([]))
        await render(query, "security", profile, i18n, line, notice=line)
    elif name in OPTIONAL_FIELDS:
        profile = await billing.set_profile_field(account.id, name, None)
        line = saved_line(name, None)
        await render(query, FIELD_GROUP[name], profile, i18n, line, notice=line)
    else:
        await stale_button(query)


# ---- threshold, currency, language ------------------------------------------------------------
async def edit_threshold(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await start_editing(state, billing, account)
    await state.set_state(SettingsForm.threshold)
    text = _(
        "✏️ Send the amount in {currency}: we will alert you when the balance falls below it "
        "(e.g. 10 or 10.50). Send «off» to turn the alert off.\nNow: {current}\n\n"
        "/cancel — leave without changes."
    ).format(currency=profile.currency, current=threshold_text(profile))
    clear = "threshold" if profile.low_balance_threshold_minor is not None else None
    await show(query, text, prompt_kb("general", clear))


async def threshold_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    text = (message.text or "").strip()
    current = await billing.get_profile(account.id)
    try:
        if text.lower() in OFF_WORDS:
            amount = None
        else:
            if len(text) > 32:
                raise ValidationFailed("too_long", limit=32)
            amount = parse_amount(text, current.currency)
        profile = await billing.set_low_balance_threshold(account.id, amount, current.currency)
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    await state.clear()
    line = _("✅ Low-balance alert: {value}").format(value=threshold_text(profile))
    await render(message, "general", profile, i18n, line)


async def edit_currency(
    query: CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    settings: Settings,
) -> None:
    profile = await start_editing(state, billing, account)
    currencies = list(dict.fromkeys([profile.base_currency, *settings.currencies]))
    text = _(
        "💱 Choose the currency for prices, invoices and the balance display. The ledger "
        "keeps its original amounts in {base}; the balance is shown converted at the "
        "current rate."
    ).format(base=profile.base_currency)
    await show(query, text, currency_kb(currencies, profile.currency))


async def currency_chosen(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    settings: Settings,
) -> None:
    await state.clear()
    if callback_data.value not in [account.base_currency, *settings.currencies]:
        raise ValidationFailed("currency_unavailable")
    profile = await billing.set_currency(account.id, callback_data.value)
    line = _("✅ Currency saved: {currency}. Balance shown: {balance}").format(
        currency=profile.currency, balance=balance_shown(profile)
    )
    await render(query, "general", profile, i18n, line, notice=_("✅ Saved"))


async def edit_language(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    profile = await start_editing(state, billing, account)
    await show(
        query,
        _("🌐 Choose the interface language:"),
        language_kb(profile.language or i18n.current_locale),
    )


async def language_chosen(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    code = callback_data.value
    if code not in LANGUAGE_NAMES:
        await query.answer(_("This language is not available."), show_alert=True)
        return
    await state.clear()
    await billing.set_language(account.id, code)
    profile = await billing.get_profile(account.id)
    with i18n.use_locale(code):
        line = _("✅ Language saved: {language}").format(language=LANGUAGE_NAMES[code])
        await render(query, "general", profile, i18n, line, notice=_("Language: English"))


def create_cancel_router() -> Router:
    """/cancel in a settings dialog; included before the main menu's /cancel, which leaves
    any other dialog for the main menu."""
    router = Router(name="settings.cancel")
    router.message.filter(F.chat.type == "private")
    router.message.register(cancel_command, Command("cancel"), StateFilter(SettingsForm))
    return router


def create_router() -> Router:
    """Included first: /settings leaves any dialog, even one that takes a secret."""
    router = Router(name="settings.menu")
    msg, cb = router.message, router.callback_query
    msg.register(cmd_settings, Command("settings"))
    cb.register(cmd_settings, MenuCb.filter(F.section == "settings"))
    cb.register(open_group, SettingsCb.filter(F.action == SettingsAction.OPEN))
    cb.register(cancel_edit, SettingsCb.filter(F.action == SettingsAction.CANCEL))
    cb.register(toggle, SettingsCb.filter(F.action == SettingsAction.TOGGLE))
    cb.register(edit_threshold, edit_filter("threshold"))
    cb.register(edit_currency, edit_filter("currency"))
    cb.register(edit_language, edit_filter("language"))
    cb.register(clear_field, SettingsCb.filter(F.action == SettingsAction.CLEAR))
    cb.register(currency_chosen, SettingsCb.filter(F.action == SettingsAction.CURRENCY))
    cb.register(language_chosen, SettingsCb.filter(F.action == SettingsAction.LANGUAGE))
    msg.register(threshold_entered, SettingsForm.threshold, VALUE_TEXT)
    return router
