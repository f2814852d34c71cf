"""Settings: the Security group, the code word (set once), the IP allow-list (confirmed before it
is saved) and the password (sent twice). The code word and the password are deleted from the
chat right after reading; the FSM keeps only the password's hash."""

from __future__ import annotations

import html

from aiogram import F, Router
from aiogram.filters import StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.types import CallbackQuery, Message
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
    invalid_text,
    ip_list_text,
    ip_reason,
    join_lines,
    password_prompt,
)
from keyboards.settings import SettingsAction, SettingsCb, ip_confirm_kb, prompt_kb
from services.billing import Billing
from services.contracts.common import Account
from services.errors import ValidationFailed
from services.security import hash_secret, verify_secret
from services.validation import ip_allowed, parse_ip_allowlist, validate_password


# ---- code word --------------------------------------------------------------------------------
async def edit_code_word(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await start_editing(state, billing, account)
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


# ---- IP allow-list ----------------------------------------------------------------------------
async def edit_ip_allowlist(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    profile = await start_editing(state, billing, account)
    await state.set_state(SettingsForm.ip_list)
    text = _(
        "🌐 Send the IP addresses allowed to enter the web billing, one per line: an IPv4 "
        "or IPv6 address, or a range like 192.168.0.1-192.168.0.10. An empty list means "
        "no restriction.\nNow: {current}\n\n/cancel — leave without changes."
    ).format(current=ip_list_text(profile.ip_allowlist))
    clear = "ip_allowlist" if profile.ip_allowlist else None
    await show(query, text, prompt_kb("security", clear))


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


# ---- password ---------------------------------------------------------------------------------
async def edit_password(
    query: CallbackQuery, state: FSMContext, billing: Billing, account: Account
) -> None:
    await start_editing(state, billing, account)
    await state.set_state(SettingsForm.password_new)
    await show(query, password_prompt(), prompt_kb("security"))


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


def create_router() -> Router:
    router = Router(name="settings.security")
    msg, cb = router.message, router.callback_query
    cb.register(edit_code_word, edit_filter("code_word"))
    cb.register(edit_ip_allowlist, edit_filter("ip_allowlist"))
    cb.register(edit_password, edit_filter("password"))
    ip_save_filter = SettingsCb.filter(F.action == SettingsAction.IP_SAVE)
    cb.register(ip_save, ip_save_filter, SettingsForm.ip_confirm)
    # Secrets: whatever text arrives in these states is deleted, even a "/command".
    msg.register(code_word_entered, SettingsForm.code_word, F.text)
    msg.register(password_entered, SettingsForm.password_new, F.text)
    msg.register(password_confirmed, SettingsForm.password_confirm, F.text)
    ip_states = StateFilter(SettingsForm.ip_list, SettingsForm.ip_confirm)
    msg.register(ip_list_entered, ip_states, VALUE_TEXT)
    return router
