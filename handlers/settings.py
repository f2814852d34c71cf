"""Settings: grouped screens (general, profile and contacts, notice e-mails, security, postal
address), each value with its edit button; edits are FSM dialogs saved on the answer, with a
confirmation showing the new value; /cancel (menu router) or the Cancel button leaves any
edit. Secrets (password, code word, the e-mail code, the call-password digits) are deleted
from the chat right after reading, kept in the FSM only as a hash, and never echoed or
logged."""

from __future__ import annotations

import html
import logging

from aiogram import F, Router
from aiogram.dispatcher.event.bases import SkipHandler
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, StateFilter
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import show
from handlers.fallback import stale_button
from handlers.settings_texts import (
    balance_shown,
    code_result_text,
    edit_prompt,
    esc,
    fill_prompt,
    invalid_text,
    ip_list_text,
    ip_reason,
    join_lines,
    missing_names,
    on_off,
    password_prompt,
    phone_status,
    profile_type_text,
    saved_line,
    screen,
    threshold_text,
)
from keyboards.callbacks import MenuCb
from keyboards.menu import LANGUAGE_NAMES
from keyboards.settings import (
    SettingsAction,
    SettingsCb,
    currency_kb,
    email_code_kb,
    ip_confirm_kb,
    language_kb,
    profile_type_kb,
    prompt_kb,
    share_contact_kb,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.profile import (
    EMAIL_CODE_TTL_SECONDS,
    FLAGS,
    OPTIONAL_FIELDS,
    PHONE_MAX_ATTEMPTS,
    TEXT_FIELDS,
    CodeCheck,
    Profile,
)
from services.email import EmailError, EmailNotConfigured, Mailer
from services.errors import RateLimited, ValidationFailed
from services.money import parse_amount
from services.security import hash_secret, verify_secret
from services.telephony import Telephony, TelephonyError
from services.validation import (
    ascii_digits,
    ip_allowed,
    normalize_phone,
    parse_ip_allowlist,
    validate_password,
    validate_text,
)

log = logging.getLogger(__name__)

OFF_WORDS = {"off", "0", "-", "no", "выкл", "выключить", "нет"}
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
    fill = State()  # the guided flow; data: field, total


async def render(
    event: Message | CallbackQuery,
    group: str,
    profile: Profile,
    i18n: I18n,
    header: str | None = None,
    notice: str | None = None,
) -> None:
    text, markup = screen(group, profile, i18n.current_locale)
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


# ---- screens ----------------------------------------------------------------------------------
async def cmd_settings(
    event: Message | CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    await state.clear()
    await render(event, "", await billing.get_profile(account.id), i18n)


async def open_group(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    await state.clear()
    await render(query, callback_data.value, await billing.get_profile(account.id), i18n)


async def cancel_edit(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    await state.clear()
    profile = await billing.get_profile(account.id)
    await render(query, callback_data.value, profile, i18n, _("Cancelled. Nothing was changed."))


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


# ---- the edit buttons: one handler per kind of value (SettingsCb(EDIT, value=field)) ---------
def edit_filter(*fields: str) -> CallbackQueryFilter:
    """The edit button of these fields; an edit of any other value is out of date (fallback)."""
    return SettingsCb.filter((F.action == SettingsAction.EDIT) & F.value.in_(fields))


async def _start_editing(state: FSMContext, billing: Billing, account: Account) -> Profile:
    """Leave any dialog; the profile as it is now, for the prompt."""
    profile = await billing.get_profile(account.id)
    await state.clear()
    return profile


async def edit_text_field(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
) -> None:
    name = callback_data.value
    profile = await _start_editing(state, billing, account)
    await state.set_state(SettingsForm.value)
    await state.update_data(field=name)
    current = getattr(profile, name)
    clear = name if name in OPTIONAL_FIELDS and current else None
    await show(query, edit_prompt(name, current), prompt_kb(FIELD_GROUP[name], clear))


async def edit_threshold(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await _start_editing(state, billing, account)
    await state.set_state(SettingsForm.threshold)
    text = _(
        "✏️ Send the amount in {currency}: we will alert you when the balance falls below it "
        "(e.g. 10 or 10.50). Send «off» to turn the alert off.\nNow: {current}\n\n"
        "/cancel — leave without changes."
    ).format(currency=profile.currency, current=threshold_text(profile))
    clear = "threshold" if profile.low_balance_threshold_minor is not None else None
    await show(query, text, prompt_kb("general", clear))


async def edit_currency(
    query: CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    settings: Settings,
) -> None:
    profile = await _start_editing(state, billing, account)
    currencies = list(dict.fromkeys([profile.base_currency, *settings.currencies]))
    text = _(
        "💱 Choose the currency for prices, invoices and the balance display. The ledger "
        "keeps its original amounts in {base}; the balance is shown converted at the "
        "current rate."
    ).format(base=profile.base_currency)
    await show(query, text, currency_kb(currencies, profile.currency))


async def edit_language(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    profile = await _start_editing(state, billing, account)
    await show(
        query,
        _("🌐 Choose the interface language:"),
        language_kb(profile.language or i18n.current_locale),
    )


async def edit_profile_type(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await _start_editing(state, billing, account)
    text = _(
        "Choose the profile type. For a company we ask its name and tax number; payments "
        "are blocked until our staff verify them."
    )
    await show(query, text, profile_type_kb(profile.profile_type))


async def edit_phone(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await _start_editing(state, billing, account)
    await state.set_state(SettingsForm.phone)
    await query.answer()
    if isinstance(query.message, Message):
        await query.message.answer(
            _(
                "📱 Send your mobile number with the country code (e.g. +44 7911 123456), "
                "or press «Share my contact» below: your own Telegram contact counts as "
                "verified.\nNow: {current}\n\n/cancel — leave without changes."
            ).format(current=phone_status(profile)),
            reply_markup=share_contact_kb(),
        )


async def edit_code_word(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await _start_editing(state, billing, account)
    if profile.code_word_set:
        await query.answer(_("The code word is already set and cannot be changed."), True)
        return
    await state.set_state(SettingsForm.code_word)
    text = _(
        "🔐 Send the code word (4 to 64 characters). It can be set only once: afterwards "
        "nobody can view or change it, and support staff can only check it. Your message "
        "will be deleted right away.\n\n/cancel — leave without changes."
    )
    await show(query, text, prompt_kb("security"))


async def edit_ip_allowlist(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await _start_editing(state, billing, account)
    await state.set_state(SettingsForm.ip_list)
    text = _(
        "🌐 Send the IP addresses allowed to enter the web billing, one per line: an IPv4 "
        "or IPv6 address, or a range like 192.168.0.1-192.168.0.10. An empty list means "
        "no restriction.\nNow: {current}\n\n/cancel — leave without changes."
    ).format(current=ip_list_text(profile.ip_allowlist))
    clear = "ip_allowlist" if profile.ip_allowlist else None
    await show(query, text, prompt_kb("security", clear))


async def edit_password(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    await _start_editing(state, billing, account)
    await state.set_state(SettingsForm.password_new)
    await show(query, password_prompt(), prompt_kb("security"))


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


# ---- text fields ------------------------------------------------------------------------------
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
    await render(message, FIELD_GROUP[name], profile, i18n, saved_line(name, value))


# ---- e-mail confirmation ----------------------------------------------------------------------
async def send_email_code(
    event: Message | CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    mailer: Mailer,
    i18n: I18n,
    header: str | None = None,
) -> None:
    try:
        code = await billing.start_email_confirmation(account.id)
    except RateLimited as exc:
        if isinstance(event, CallbackQuery):
            raise  # the central handler answers "try again in N s"
        await state.clear()
        text = _("⚠️ A new code can be sent in {seconds} s: press «Confirm e-mail» then.").format(
            seconds=exc.retry_after
        )
        await render(
            event, "profile", await billing.get_profile(account.id), i18n, join_lines(header, text)
        )
        return
    profile = await billing.get_profile(account.id)
    email = profile.email or ""
    subject = _("Your e-mail confirmation code")
    body = _(
        "Hello!\n\nYour code to confirm this e-mail address in the billing bot: {code}\n"
        "It is valid for {minutes} minutes. If you did not ask for it, ignore this e-mail."
    ).format(code=code, minutes=EMAIL_CODE_TTL_SECONDS // 60)
    try:
        await mailer.send(email, subject, body)
    except EmailError as exc:
        await billing.discard_code(account.id, "email")
        if isinstance(exc, EmailNotConfigured):
            text = _("Sending e-mail is not set up yet, so the address cannot be confirmed now.")
        else:
            text = _("We could not send the e-mail to {email}. Please try again later.").format(
                email=esc(email)
            )
        await state.clear()
        await render(event, "profile", profile, i18n, join_lines(header, "⚠️ " + text))
        return
    await state.set_state(SettingsForm.email_code)
    text = _(
        "📨 We sent a 6-digit code to {email}. Send it here to confirm the address; it is "
        "valid for {minutes} minutes.\n\n/cancel — leave without changes."
    ).format(email=esc(email), minutes=EMAIL_CODE_TTL_SECONDS // 60)
    await show(event, join_lines(header, text), email_code_kb())


async def email_code_button(
    query: CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    mailer: Mailer,
    i18n: I18n,
) -> None:
    await send_email_code(query, state, billing, account, mailer, i18n)


async def email_code_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    await delete_quietly(message)  # a one-time code is a secret too
    check = await billing.confirm_code(account.id, "email", message.text or "")
    if await code_checked(message, state, billing, account, i18n, check, "email"):
        return
    await message.answer(code_result_text(check), reply_markup=email_code_kb())


async def code_checked(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    check: CodeCheck,
    kind: str,
) -> bool:
    """Answer a confirmed or a wrong code (the dialog goes on after a wrong one); otherwise
    end the dialog and return False so the caller says how to get a new code."""
    if check.status == "wrong":
        await message.answer(code_result_text(check))
        return True
    await state.clear()
    if check.status != "ok":
        return False
    profile = await billing.get_profile(account.id)
    if kind == "email":
        line = _("✅ E-mail confirmed: <b>{email}</b>").format(email=esc(check.target))
    else:
        line = _("✅ Phone verified: <b>{phone}</b>").format(phone=esc(check.target))
    await render(message, "profile", profile, i18n, line)
    return True


# ---- phone --------------------------------------------------------------------------------
async def phone_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    verified = False
    if message.contact is not None:
        if message.from_user is None or message.contact.user_id != message.from_user.id:
            await message.answer(
                _("❌ This is not your own contact. Press «Share my contact» or type your number.")
            )
            return
        text, verified = message.contact.phone_number, True
        try:
            text = normalize_phone(text, assume_plus=True)
        except ValidationFailed as exc:
            await ask_again(message, exc)
            return
    else:
        text = message.text or ""
        if text == _("✖️ Cancel"):
            await state.clear()
            await message.answer(
                _("Cancelled. Nothing was changed."), reply_markup=ReplyKeyboardRemove()
            )
            await render(message, "profile", await billing.get_profile(account.id), i18n)
            return
    try:
        profile = await billing.set_phone(account.id, text, verified=verified)
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    await state.clear()
    status = _("verified") if profile.phone_verified else _("not verified")
    await message.answer(
        _("✅ Mobile phone saved: <b>{phone}</b> ({status})").format(
            phone=esc(profile.phone), status=status
        ),
        reply_markup=ReplyKeyboardRemove(),
    )
    await render(message, "profile", profile, i18n)


async def phone_call_button(
    query: CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    telephony: Telephony,
) -> None:
    phone = await billing.phone_call_target(account.id)  # RateLimited / InvalidState
    try:
        code = await telephony.call_password(phone)
    except TelephonyError:
        await query.answer(_("We could not place the call. Please try again later."), True)
        return
    await billing.start_phone_confirmation(account.id, code)
    await state.set_state(SettingsForm.phone_code)
    text = _(
        "📞 We are calling {phone}. You do not need to answer: send here the last 4 digits of "
        "the number that calls you. Wrong attempts allowed: {attempts}.\n\n"
        "/cancel — leave without changes."
    ).format(phone=esc(phone), attempts=PHONE_MAX_ATTEMPTS)
    await show(query, text, prompt_kb("profile"))


async def phone_code_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    digits = (message.text or "").strip()
    await delete_quietly(message)  # the call-password is a secret too
    if not (len(digits) == 4 and ascii_digits(digits)):
        await message.answer(_("❌ Send exactly 4 digits."))
        return
    check = await billing.confirm_code(account.id, "phone_call", digits)
    if await code_checked(message, state, billing, account, i18n, check, "phone_call"):
        return
    profile = await billing.get_profile(account.id)
    await render(message, "profile", profile, i18n, code_result_text(check))


# ---- threshold, currency, language, profile type ------------------------------------------
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


async def profile_type_chosen(
    query: CallbackQuery,
    callback_data: SettingsCb,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    await state.clear()
    if callback_data.value == "individual":
        profile = await billing.set_individual(account.id)
        line = _("✅ Profile type saved: <b>{ptype}</b>").format(ptype=profile_type_text(profile))
        await render(query, "profile", profile, i18n, line, notice=_("✅ Saved"))
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
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
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
    await render(message, "profile", profile, i18n, line)


# ---- security ---------------------------------------------------------------------------------
async def code_word_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    secret = message.text or ""
    await delete_quietly(message)
    try:
        await billing.set_code_word(account.id, secret)
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    await state.clear()
    profile = await billing.get_profile(account.id)
    line = _("✅ Code word saved. It will never be shown again.")
    await render(message, "security", profile, i18n, line)


async def ip_list_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account
) -> None:
    try:
        entries, errors = parse_ip_allowlist(message.text or "")
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    if errors:
        lines = [
            _("Line {line} «{text}»: {reason}").format(
                line=e.line, text=html.escape(e.text), reason=ip_reason(e.reason)
            )
            for e in errors[:20]
        ]
        await message.answer(
            _("❌ Nothing was saved. Fix these lines and send the whole list again:")
            + "\n"
            + "\n".join(lines)
        )
        return
    profile = await billing.get_profile(account.id)
    await state.set_state(SettingsForm.ip_confirm)
    await state.update_data(ip=entries)
    if profile.last_ip and entries and not ip_allowed(profile.last_ip, entries):
        warning = _(
            "⚠️ Your last known address {ip} is not in this list: with this list you will not "
            "be able to log in to the web billing from it."
        ).format(ip=html.escape(profile.last_ip))
    elif profile.last_ip or not entries:
        warning = ""
    else:
        warning = _(
            "⚠️ Make sure your own IP address is in the list: otherwise you will not be able "
            "to log in to the web billing."
        )
    text = _("Save this IP allow-list?{entries}").format(entries=ip_list_text(entries))
    await message.answer(
        join_lines(text, warning) if warning else text, reply_markup=ip_confirm_kb()
    )


async def ip_save(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    entries = list((await state.get_data()).get("ip", []))
    await state.clear()
    profile = await billing.set_ip_allowlist(account.id, entries)
    line = _("✅ IP allow-list saved: {value}").format(value=ip_list_text(profile.ip_allowlist))
    await render(query, "security", profile, i18n, line, notice=_("✅ Saved"))


async def password_entered(message: Message, state: FSMContext) -> None:
    secret = message.text or ""
    await delete_quietly(message)
    try:
        validate_password(secret)
    except ValidationFailed as exc:
        await message.answer(invalid_text(exc) + "\n" + _("Send another password or /cancel."))
        return
    await state.update_data(password_hash=await hash_secret(secret))
    await state.set_state(SettingsForm.password_confirm)
    await message.answer(
        _("🔑 Send the same password again to confirm it. This message will be deleted too."),
        reply_markup=prompt_kb("security"),
    )


async def password_confirmed(
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    secret = message.text or ""
    await delete_quietly(message)
    stored = (await state.get_data()).get("password_hash")
    if not await verify_secret(secret, stored):
        await state.set_data({})
        await state.set_state(SettingsForm.password_new)
        await message.answer(
            _("❌ The passwords do not match. Nothing was saved.") + "\n\n" + password_prompt(),
            reply_markup=prompt_kb("security"),
        )
        return
    await billing.set_password(account.id, secret)
    await state.clear()
    profile = await billing.get_profile(account.id)
    await render(message, "security", profile, i18n, _("✅ Password changed."))


# ---- the guided flow for missing required fields ----------------------------------------------


async def fill_start(
    event: Message | CallbackQuery,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
) -> None:
    await state.clear()
    profile = await billing.get_profile(account.id)
    if not profile.missing:
        await render(event, "", profile, i18n)
        return
    await state.set_state(SettingsForm.fill)
    total = len(profile.missing)
    await state.update_data(field=profile.missing[0], total=total)
    intro = _("To pay, we still need: {fields}.").format(fields=missing_names(profile.missing))
    await show(event, join_lines(intro, fill_prompt(profile.missing[0], 1, total)), prompt_kb(""))


async def fill_entered(
    message: Message, state: FSMContext, billing: Billing, account: Account, i18n: I18n
) -> None:
    data = await state.get_data()
    name, total = data.get("field", ""), int(data.get("total", 1))
    try:
        profile = await save_text_field(billing, account.id, name, message.text or "")
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    line = saved_line(name, getattr(profile, name))
    if profile.missing:
        following = profile.missing[0]
        await state.update_data(field=following)
        step = max(1, total - len(profile.missing) + 1)
        await message.answer(
            join_lines(line, fill_prompt(following, step, max(total, step))),
            reply_markup=prompt_kb(""),
        )
        return
    await state.clear()
    await render(message, "", profile, i18n, line)


async def not_text(message: Message) -> None:
    await message.answer(_("Please send the value as text, or /cancel to leave."))


def create_router() -> Router:
    router = Router(name="settings")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    msg, cb = router.message, router.callback_query
    msg.register(cmd_settings, Command("settings"))
    cb.register(cmd_settings, MenuCb.filter(F.section == "settings"))
    cb.register(open_group, SettingsCb.filter(F.action == SettingsAction.OPEN))
    cb.register(cancel_edit, SettingsCb.filter(F.action == SettingsAction.CANCEL))
    cb.register(toggle, SettingsCb.filter(F.action == SettingsAction.TOGGLE))
    cb.register(edit_text_field, edit_filter(*TEXT_FIELDS, "email"))
    cb.register(edit_threshold, edit_filter("threshold"))
    cb.register(edit_currency, edit_filter("currency"))
    cb.register(edit_language, edit_filter("language"))
    cb.register(edit_profile_type, edit_filter("profile_type"))
    cb.register(edit_phone, edit_filter("phone"))
    cb.register(edit_code_word, edit_filter("code_word"))
    cb.register(edit_ip_allowlist, edit_filter("ip_allowlist"))
    cb.register(edit_password, edit_filter("password"))
    cb.register(clear_field, SettingsCb.filter(F.action == SettingsAction.CLEAR))
    cb.register(currency_chosen, SettingsCb.filter(F.action == SettingsAction.CURRENCY))
    cb.register(language_chosen, SettingsCb.filter(F.action == SettingsAction.LANGUAGE))
    cb.register(profile_type_chosen, SettingsCb.filter(F.action == SettingsAction.PROFILE_TYPE))
    cb.register(email_code_button, SettingsCb.filter(F.action == SettingsAction.EMAIL_CODE))
    cb.register(phone_call_button, SettingsCb.filter(F.action == SettingsAction.PHONE_CALL))
    cb.register(fill_start, SettingsCb.filter(F.action == SettingsAction.FILL))
    ip_save_filter = SettingsCb.filter(F.action == SettingsAction.IP_SAVE)
    cb.register(ip_save, ip_save_filter, SettingsForm.ip_confirm)

    # Secrets first: whatever arrives in these states is deleted, even a "/command".
    msg.register(code_word_entered, SettingsForm.code_word, F.text)
    msg.register(password_entered, SettingsForm.password_new, F.text)
    msg.register(password_confirmed, SettingsForm.password_confirm, F.text)
    msg.register(phone_entered, SettingsForm.phone, F.contact)
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
    )
    # A command leaves the edit and goes on to its section (raw_state is read once per update,
    # so the value handlers below must not match it either).
    value_text = F.text & ~F.text.startswith("/")
    msg.register(command_in_dialog, dialog_states, F.text.startswith("/"))
    msg.register(value_entered, SettingsForm.value, value_text)
    msg.register(threshold_entered, SettingsForm.threshold, value_text)
    msg.register(email_code_entered, SettingsForm.email_code, value_text)
    msg.register(phone_entered, SettingsForm.phone, value_text)
    msg.register(phone_code_entered, SettingsForm.phone_code, value_text)
    msg.register(company_name_entered, SettingsForm.company_name, value_text)
    msg.register(company_tax_entered, SettingsForm.company_tax, value_text)
    msg.register(
        ip_list_entered, StateFilter(SettingsForm.ip_list, SettingsForm.ip_confirm), value_text
    )
    msg.register(fill_entered, SettingsForm.fill, value_text)
    msg.register(not_text, StateFilter(SettingsForm), ~F.text)
    return router
