"""Keyboards of the Settings section: grouped screens with one edit button per value."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData
from aiogram.types import (
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    KeyboardButton,
    ReplyKeyboardMarkup,
)
from aiogram.utils.i18n import gettext as _
from aiogram.utils.keyboard import InlineKeyboardBuilder

from keyboards.callbacks import NewTicketCb
from keyboards.common import back_button
from keyboards.menu import LANGUAGE_NAMES
from services.contracts.profile import Profile


class SettingsCb(CallbackData, prefix="st"):
    """`action`: open (value = group, "" for the settings root), toggle (value = flag),
    edit (value = field), clear (value = field), cur (value = currency), lang (value = code),
    ptype (value = individual/company), email_code, phone_call, ip_save, cancel (value =
    group to return to), fill (the guided flow for missing required fields — the payment
    gate links here)."""

    action: str
    value: str = ""


GROUPS = ("general", "profile", "mails", "security", "address")


def _button(text: str, action: str, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=SettingsCb(action=action, value=value).pack()
    )


def _back_to(group: str) -> InlineKeyboardButton:
    if group:
        return _button(_("⬅️ Back"), "open", "")
    return back_button()


def root_kb(profile: Profile) -> InlineKeyboardMarkup:
    rows = [
        [_button(_("🔔 General"), "open", "general")],
        [_button(_("👤 Profile and contacts"), "open", "profile")],
        [_button(_("✉️ Notice e-mails"), "open", "mails")],
        [_button(_("🔐 Security"), "open", "security")],
        [_button(_("🏠 Postal address"), "open", "address")],
    ]
    if profile.missing:
        rows.insert(0, [fill_missing_button()])
    rows.append([back_button()])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def fill_missing_button() -> InlineKeyboardButton:
    """For the payment gate: starts the guided flow asking exactly the missing profile fields."""
    return _button(_("✍️ Fill in the missing data"), "fill")


def country_button() -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=_("🎫 Change country (ticket)"), callback_data=NewTicketCb(topic="country").pack()
    )


def general_kb() -> InlineKeyboardMarkup:
    rows = [
        [_button(_("🔁 Newsletter"), "toggle", "newsletter")],
        [_button(_("✏️ Low-balance alert"), "edit", "threshold")],
        [_button(_("🔁 Auto-renewal"), "toggle", "auto_renew_default")],
        [_button(_("✏️ Currency"), "edit", "currency")],
        [_button(_("🔁 Payment without authorization"), "toggle", "pay_without_auth")],
        [_button(_("✏️ Language"), "edit", "language")],
        [country_button()],
        [_back_to("general")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def profile_kb(profile: Profile) -> InlineKeyboardMarkup:
    rows = [
        [_button(_("✏️ Profile type"), "edit", "profile_type")],
        [_button(_("✏️ Last name"), "edit", "last_name")],
        [_button(_("✏️ First name"), "edit", "first_name")],
        [_button(_("✏️ E-mail"), "edit", "email")],
    ]
    if profile.email and not profile.email_confirmed:
        rows.append([_button(_("📨 Confirm e-mail"), "email_code")])
    rows.append([_button(_("✏️ Mobile phone"), "edit", "phone")])
    if profile.phone and not profile.phone_verified:
        rows.append([_button(_("📞 Verify the phone by a call"), "phone_call")])
    rows.append([_back_to("profile")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def mails_kb() -> InlineKeyboardMarkup:
    rows = [
        [_button(_("✏️ Invoices and orders"), "edit", "email_invoices")],
        [_button(_("✏️ Support"), "edit", "email_support")],
        [_button(_("✏️ Abuse"), "edit", "email_abuse")],
        [_back_to("mails")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def security_kb(profile: Profile) -> InlineKeyboardMarkup:
    rows = []
    if not profile.code_word_set:
        rows.append([_button(_("✏️ Code word"), "edit", "code_word")])
    rows += [
        [_button(_("✏️ IP allow-list"), "edit", "ip_allowlist")],
        [_button(_("🔁 Show last IP"), "toggle", "show_last_ip")],
        [_button(_("🔑 Change password"), "edit", "password")],
        [_back_to("security")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def address_kb() -> InlineKeyboardMarkup:
    rows = [
        [_button(_("✏️ Region"), "edit", "region")],
        [_button(_("✏️ City"), "edit", "city")],
        [_button(_("✏️ Postcode"), "edit", "postcode")],
        [_button(_("✏️ Address"), "edit", "address")],
        [country_button()],
        [_back_to("address")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def prompt_kb(group: str, clear_field: str | None = None) -> InlineKeyboardMarkup:
    """Under a question: an optional "clear" and a way back without changes."""
    rows = []
    if clear_field:
        rows.append([_button(clear_text(clear_field), "clear", clear_field)])
    rows.append([_button(_("✖️ Cancel"), "cancel", group)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def clear_text(field: str) -> str:
    if field == "threshold":
        return _("🔕 Turn the alert off")
    if field == "ip_allowlist":
        return _("🔓 No restriction (empty list)")
    return _("🧹 Clear")


def currency_kb(currencies: list[str], current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code in currencies:
        builder.button(
            text=("✅ " if code == current else "") + code,
            callback_data=SettingsCb(action="cur", value=code),
        )
    builder.adjust(3)
    builder.row(_button(_("⬅️ Back"), "open", "general"))
    return builder.as_markup()


def language_kb(current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        builder.button(
            text=("✅ " if code == current else "") + name,
            callback_data=SettingsCb(action="lang", value=code),
        )
    builder.adjust(2)
    builder.row(_button(_("⬅️ Back"), "open", "general"))
    return builder.as_markup()


def profile_type_kb(current: str) -> InlineKeyboardMarkup:
    mark = {current: "✅ "}
    rows = [
        [_button(mark.get("individual", "") + _("Individual"), "ptype", "individual")],
        [_button(mark.get("company", "") + _("Company"), "ptype", "company")],
        [_button(_("⬅️ Back"), "open", "profile")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def email_code_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(_("🔄 Send a new code"), "email_code")],
            [_button(_("✖️ Cancel"), "cancel", "profile")],
        ]
    )


def ip_confirm_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(_("✅ Save the list"), "ip_save")],
            [_button(_("✖️ Cancel"), "cancel", "security")],
        ]
    )


def share_contact_kb() -> ReplyKeyboardMarkup:
    return ReplyKeyboardMarkup(
        keyboard=[
            [KeyboardButton(text=_("📱 Share my contact"), request_contact=True)],
            [KeyboardButton(text=_("✖️ Cancel"))],
        ],
        resize_keyboard=True,
        one_time_keyboard=True,
    )
