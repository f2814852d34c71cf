"""Keyboards of the Settings section: grouped screens with one edit button per value."""

from __future__ import annotations

from enum import StrEnum

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


class SettingsAction(StrEnum):
    """What a settings button does; `value` says to what (the values are what old buttons
    carry)."""

    OPEN = "open"  # value = group, "" for the settings root
    TOGGLE = "toggle"  # value = flag
    EDIT = "edit"  # value = field
    CLEAR = "clear"  # value = field
    CURRENCY = "cur"  # value = currency
    LANGUAGE = "lang"  # value = code
    PROFILE_TYPE = "ptype"  # value = individual/company
    EMAIL_CODE = "email_code"
    PHONE_CALL = "phone_call"
    IP_SAVE = "ip_save"
    CANCEL = "cancel"  # value = group to return to
    FILL = "fill"  # the guided flow for missing required fields (the payment gate links here)
    TG_NAME = "tg_name"  # value = last_name/first_name: take it from the Telegram profile
    COUNTRY = "country"  # value = group to return to: set the empty country (once)
    COUNTRY_SAVE = "cset"  # value = ISO code, as shown for confirmation


class SettingsCb(CallbackData, prefix="st"):
    """A settings button: `action` is a SettingsAction, `value` its argument."""

    action: SettingsAction
    value: str = ""


GROUPS = ("general", "profile", "mails", "security", "address")


def _button(text: str, action: SettingsAction, value: str = "") -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=text, callback_data=SettingsCb(action=action, value=value).pack()
    )


def _back_to(group: str) -> InlineKeyboardButton:
    if group:
        return _button(_("⬅️ Back"), SettingsAction.OPEN, "")
    return back_button()


def root_kb(profile: Profile) -> InlineKeyboardMarkup:
    rows = [
        [_button(_("🔔 General"), SettingsAction.OPEN, "general")],
        [_button(_("👤 Profile and contacts"), SettingsAction.OPEN, "profile")],
        [_button(_("✉️ Notice e-mails"), SettingsAction.OPEN, "mails")],
        [_button(_("🔐 Security"), SettingsAction.OPEN, "security")],
        [_button(_("🏠 Postal address"), SettingsAction.OPEN, "address")],
    ]
    if profile.missing:
        rows.insert(0, [fill_missing_button()])
    rows.append([back_button()])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def fill_missing_button(resume: str = "") -> InlineKeyboardButton:
    """For the payment gate: starts the guided flow asking exactly the missing profile fields;
    `resume` is the payment to return to afterwards (handlers.balance.resume_payment)."""
    return _button(_("✍️ Fill in the missing data"), SettingsAction.FILL, resume)


def country_button() -> InlineKeyboardButton:
    return InlineKeyboardButton(
        text=_("🎫 Change country (ticket)"), callback_data=NewTicketCb(topic="country").pack()
    )


def country_edit_button(profile: Profile, group: str) -> InlineKeyboardButton:
    """An empty country the customer sets once; a set one changes through a ticket only."""
    if profile.country:
        return country_button()
    return _button(_("✏️ Country"), SettingsAction.COUNTRY, group)


def general_kb(profile: Profile) -> InlineKeyboardMarkup:
    rows = [
        [_button(_("🔁 Newsletter"), SettingsAction.TOGGLE, "newsletter")],
        [_button(_("✏️ Low-balance alert"), SettingsAction.EDIT, "threshold")],
        [_button(_("🔁 Auto-renewal"), SettingsAction.TOGGLE, "auto_renew_default")],
        [_button(_("✏️ Currency"), SettingsAction.EDIT, "currency")],
        [_button(_("🔁 Payment without authorization"), SettingsAction.TOGGLE, "pay_without_auth")],
        [_button(_("✏️ Language"), SettingsAction.EDIT, "language")],
        [country_edit_button(profile, "general")],
        [_back_to("general")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def profile_kb(profile: Profile, email_confirmable: bool = True) -> InlineKeyboardMarkup:
    """`email_confirmable`: e-mail can be sent (SMTP is configured); otherwise no button."""
    rows = [
        [_button(_("✏️ Profile type"), SettingsAction.EDIT, "profile_type")],
        [_button(_("✏️ Last name"), SettingsAction.EDIT, "last_name")],
        [_button(_("✏️ First name"), SettingsAction.EDIT, "first_name")],
        [_button(_("✏️ E-mail"), SettingsAction.EDIT, "email")],
    ]
    if profile.email and not profile.email_confirmed and email_confirmable:
        rows.append([_button(_("📨 Confirm e-mail"), SettingsAction.EMAIL_CODE)])
    rows.append([_button(_("✏️ Mobile phone"), SettingsAction.EDIT, "phone")])
    if profile.phone and not profile.phone_verified:
        rows.append([_button(_("📞 Verify the phone by a call"), SettingsAction.PHONE_CALL)])
    rows.append([_back_to("profile")])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def mails_kb() -> InlineKeyboardMarkup:
    rows = [
        [_button(_("✏️ Invoices and orders"), SettingsAction.EDIT, "email_invoices")],
        [_button(_("✏️ Support"), SettingsAction.EDIT, "email_support")],
        [_button(_("✏️ Abuse"), SettingsAction.EDIT, "email_abuse")],
        [_back_to("mails")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def security_kb(profile: Profile) -> InlineKeyboardMarkup:
    rows = []
    if not profile.code_word_set:
        rows.append([_button(_("✏️ Code word"), SettingsAction.EDIT, "code_word")])
    rows += [
        [_button(_("✏️ IP allow-list"), SettingsAction.EDIT, "ip_allowlist")],
        [_button(_("🔁 Show last IP"), SettingsAction.TOGGLE, "show_last_ip")],
        [_button(_("🔑 Change password"), SettingsAction.EDIT, "password")],
        [_back_to("security")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def address_kb(profile: Profile) -> InlineKeyboardMarkup:
    rows = [
        [_button(_("✏️ Region"), SettingsAction.EDIT, "region")],
        [_button(_("✏️ City"), SettingsAction.EDIT, "city")],
        [_button(_("✏️ Postcode"), SettingsAction.EDIT, "postcode")],
        [_button(_("✏️ Address"), SettingsAction.EDIT, "address")],
        [country_edit_button(profile, "address")],
        [_back_to("address")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def prompt_kb(
    group: str, clear_field: str | None = None, offer: InlineKeyboardButton | None = None
) -> InlineKeyboardMarkup:
    """Under a question: an optional answer to take with one tap (`offer`), an optional
    "clear" and a way back without changes."""
    rows = [[offer]] if offer else []
    if clear_field:
        rows.append([_button(clear_text(clear_field), SettingsAction.CLEAR, clear_field)])
    rows.append([_button(_("✖️ Cancel"), SettingsAction.CANCEL, group)])
    return InlineKeyboardMarkup(inline_keyboard=rows)


def telegram_name_button(field: str, value: str) -> InlineKeyboardButton:
    """One tap takes the name from the customer's Telegram profile (`value` is only shown:
    the handler reads it from the Telegram user again)."""
    return _button(_("✅ Use «{name}»").format(name=value), SettingsAction.TG_NAME, field)


def country_confirm_kb(code: str, group: str) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(_("✅ Save the country"), SettingsAction.COUNTRY_SAVE, code)],
            [_button(_("✖️ Cancel"), SettingsAction.CANCEL, group)],
        ]
    )


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
            callback_data=SettingsCb(action=SettingsAction.CURRENCY, value=code),
        )
    builder.adjust(3)
    builder.row(_button(_("⬅️ Back"), SettingsAction.OPEN, "general"))
    return builder.as_markup()


def language_kb(current: str) -> InlineKeyboardMarkup:
    builder = InlineKeyboardBuilder()
    for code, name in LANGUAGE_NAMES.items():
        builder.button(
            text=("✅ " if code == current else "") + name,
            callback_data=SettingsCb(action=SettingsAction.LANGUAGE, value=code),
        )
    builder.adjust(2)
    builder.row(_button(_("⬅️ Back"), SettingsAction.OPEN, "general"))
    return builder.as_markup()


def profile_type_kb(current: str) -> InlineKeyboardMarkup:
    mark = {current: "✅ "}
    rows = [
        [
            _button(
                mark.get("individual", "") + _("Individual"),
                SettingsAction.PROFILE_TYPE,
                "individual",
            )
        ],
        [_button(mark.get("company", "") + _("Company"), SettingsAction.PROFILE_TYPE, "company")],
        [_button(_("⬅️ Back"), SettingsAction.OPEN, "profile")],
    ]
    return InlineKeyboardMarkup(inline_keyboard=rows)


def email_code_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(_("🔄 Send a new code"), SettingsAction.EMAIL_CODE)],
            [_button(_("✖️ Cancel"), SettingsAction.CANCEL, "profile")],
        ]
    )


def ip_confirm_kb() -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(
        inline_keyboard=[
            [_button(_("✅ Save the list"), SettingsAction.IP_SAVE)],
            [_button(_("✖️ Cancel"), SettingsAction.CANCEL, "security")],
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
