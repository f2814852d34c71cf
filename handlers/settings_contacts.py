"""Settings: the contacts confirmed with a code, the e-mail (a code by mail) and the mobile phone
(a shared Telegram contact, or a call whose last 4 digits are the code). The codes are
secrets: deleted from the chat right after reading."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message, ReplyKeyboardRemove
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from handlers.common import show
from handlers.settings_common import (
    VALUE_TEXT,
    SettingsForm,
    ask_again,
    delete_quietly,
    edit_filter,
    render,
    start_editing,
)
from handlers.settings_texts import (
    code_result_text,
    esc,
    join_lines,
    phone_status,
)
from keyboards.settings import (
    SettingsAction,
    SettingsCb,
    email_code_kb,
    prompt_kb,
    share_contact_kb,
)
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.profile import EMAIL_CODE_TTL_SECONDS, PHONE_MAX_ATTEMPTS, CodeCheck
from services.email import EmailError, EmailNotConfigured, Mailer
from services.errors import RateLimited, ValidationFailed
from services.telephony import Telephony, TelephonyError
from services.validation import ascii_digits, normalize_phone


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
        profile = await billing.get_profile(account.id)
        await render(event, "profile", profile, i18n, join_lines(header, text), mailer=mailer)
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
        line = join_lines(header, "⚠️ " + text)
        await render(event, "profile", profile, i18n, line, mailer=mailer)
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
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    await delete_quietly(message)  # a one-time code is a secret too
    check = await billing.confirm_code(account.id, "email", message.text or "")
    if await code_checked(message, state, billing, account, i18n, mailer, check, "email"):
        return
    await message.answer(code_result_text(check), reply_markup=email_code_kb())


async def code_checked(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
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
    await render(message, "profile", profile, i18n, line, mailer=mailer)
    return True


# ---- phone --------------------------------------------------------------------------------
async def edit_phone(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await start_editing(state, billing, account)
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


async def phone_entered(
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
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
            profile = await billing.get_profile(account.id)
            await render(message, "profile", profile, i18n, mailer=mailer)
            return
    try:
        profile = await billing.set_phone(account.id, text, verified=verified)
    except ValidationFailed as exc:
        await ask_again(message, exc)
        return
    await state.clear()
    saved = (
        _("✅ Mobile phone saved: <b>{phone}</b> (verified)")
        if profile.phone_verified
        else _("✅ Mobile phone saved: <b>{phone}</b> (not verified)")
    )
    await message.answer(saved.format(phone=esc(profile.phone)), reply_markup=ReplyKeyboardRemove())
    await render(message, "profile", profile, i18n, mailer=mailer)


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
    message: Message,
    state: FSMContext,
    billing: Billing,
    account: Account,
    i18n: I18n,
    mailer: Mailer,
) -> None:
    digits = (message.text or "").strip()
    await delete_quietly(message)  # the call-password is a secret too
    if not (len(digits) == 4 and ascii_digits(digits)):
        await message.answer(_("❌ Send exactly 4 digits."))
        return
    check = await billing.confirm_code(account.id, "phone_call", digits)
    if await code_checked(message, state, billing, account, i18n, mailer, check, "phone_call"):
        return
    profile = await billing.get_profile(account.id)
    await render(message, "profile", profile, i18n, code_result_text(check), mailer=mailer)


def create_router() -> Router:
    router = Router(name="settings.contacts")
    msg, cb = router.message, router.callback_query
    cb.register(edit_phone, edit_filter("phone"))
    cb.register(email_code_button, SettingsCb.filter(F.action == SettingsAction.EMAIL_CODE))
    cb.register(phone_call_button, SettingsCb.filter(F.action == SettingsAction.PHONE_CALL))
    msg.register(phone_entered, SettingsForm.phone, F.contact)
    msg.register(email_code_entered, SettingsForm.email_code, VALUE_TEXT)
    msg.register(phone_entered, SettingsForm.phone, VALUE_TEXT)
    msg.register(phone_code_entered, SettingsForm.phone_code, VALUE_TEXT)
    return router
