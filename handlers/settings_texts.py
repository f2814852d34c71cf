"""Texts of the Settings screens and dialogs (pure functions of the Profile DTO)."""

from __future__ import annotations

import html

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import gettext as _
from babel import Locale

from handlers.common import locale, money
from handlers.errors import PROFILE_FIELD_NAMES
from keyboards.menu import LANGUAGE_NAMES
from keyboards.settings import (
    address_kb,
    general_kb,
    mails_kb,
    profile_kb,
    root_kb,
    security_kb,
)
from services.contracts.profile import CodeCheck, Profile
from services.errors import ValidationFailed
from services.validation import PASSWORD_MAX, PASSWORD_MIN


def esc(value: str | None) -> str:
    return html.escape(value) if value else "—"


def on_off(value: bool) -> str:
    return _("on") if value else _("off")


def field_label(name: str) -> str:
    labels = {
        "last_name": _("Last name"),
        "first_name": _("First name"),
        "email": _("E-mail"),
        "phone": _("Mobile phone"),
        "email_invoices": _("E-mail for invoices and orders"),
        "email_support": _("E-mail for support"),
        "email_abuse": _("E-mail for abuse reports"),
        "region": _("Region"),
        "city": _("City"),
        "postcode": _("Postcode"),
        "address": _("Address"),
    }
    return labels[name]


def field_prompt(name: str) -> str:
    prompts = {
        "last_name": _(
            "Send your last name: letters, spaces, hyphens and apostrophes, up to 100 characters."
        ),
        "first_name": _(
            "Send your first name: letters, spaces, hyphens and apostrophes, up to 100 characters."
        ),
        "email": _("Send your e-mail address. We will send a confirmation code to it."),
        "email_invoices": _(
            "Send the e-mail address for invoices and orders (it may be the main one)."
        ),
        "email_support": _("Send the e-mail address for support (it may be the main one)."),
        "email_abuse": _("Send the e-mail address for abuse reports (it may be the main one)."),
        "region": _("Send your region or state (up to 100 characters)."),
        "city": _("Send your city (up to 100 characters)."),
        "postcode": _("Send your postcode: letters, digits, spaces and hyphens, up to 20."),
        "address": _("Send your street address: street, house, flat (up to 300 characters)."),
    }
    return prompts[name]


def invalid_text(error: ValidationFailed) -> str:
    params = error.params
    texts = {
        "empty": lambda: _("The value is empty."),
        "too_long": lambda: _("Too long: at most {limit} characters.").format(
            limit=params.get("limit")
        ),
        "name_chars": lambda: _("Use only letters, spaces, hyphens and apostrophes."),
        "email_invalid": lambda: _(
            "This does not look like an e-mail address (example: name@example.com)."
        ),
        "phone_invalid": lambda: _(
            "This does not look like a mobile number. Use the international format, "
            "e.g. +44 7911 123456."
        ),
        "phone_no_country": lambda: _(
            "Add the country code: start the number with + (e.g. +7 912 345-67-89)."
        ),
        "text_chars": lambda: _("The text contains characters that are not allowed."),
        "postcode_invalid": lambda: _(
            "A postcode may contain only letters, digits, spaces and hyphens."
        ),
        "tax_id_invalid": lambda: _(
            "A tax number has 4 to 64 letters or digits (spaces, hyphens, slashes and dots "
            "are allowed)."
        ),
        "password_short": lambda: _("The password is too short: at least {min} characters.").format(
            min=params.get("min")
        ),
        "password_long": lambda: _("The password is too long: at most {max} characters.").format(
            max=params.get("max")
        ),
        "password_spaces": lambda: _("The password must not contain spaces."),
        "password_weak": lambda: _("The password needs at least one letter and one digit."),
        "code_word_short": lambda: _(
            "The code word is too short: at least {min} characters."
        ).format(min=params.get("min")),
        "not_a_number": lambda: _("Send an amount, for example 10 or 10.50, or «off»."),
        "not_positive": lambda: _("The amount must be greater than zero."),
        "too_many_decimals": lambda: _("At most {places} digits after the decimal point.").format(
            places=params.get("places")
        ),
        "too_large": lambda: _("The amount is too large."),
        "currency_unavailable": lambda: _("This currency is not available right now."),
        "ip_list_too_long": lambda: _("Too many entries: at most {limit}.").format(
            limit=params.get("limit")
        ),
        "country_invalid": lambda: _(
            "This is not a country we know. Send its two-letter code (e.g. DE) or its name."
        ),
    }
    make = texts.get(error.detail)
    return "❌ " + (make() if make else _("The value was rejected."))


def ip_reason(reason: str) -> str:
    reasons = {
        "not_an_ip": _("not an IP address"),
        "reversed_range": _("the range starts after it ends"),
        "mixed_versions": _("a range cannot mix IPv4 and IPv6"),
        "too_long": _("the line is too long"),
        "cidr": _("use a range start-end instead of /prefix"),
    }
    return reasons.get(reason, reason)


def missing_names(fields: list[str]) -> str:
    return ", ".join(PROFILE_FIELD_NAMES.get(f, lambda f=f: f)() for f in fields)


def required_mark(profile: Profile, name: str) -> str:
    return _(" (required)") if name in profile.missing else ""


def country_name(code: str | None) -> str:
    if not code:
        return _("not specified")
    return Locale.parse(locale()).territories.get(code.upper(), code.upper())


def root_text(profile: Profile) -> str:
    text = _("⚙️ <b>Settings</b>\nLogin: <code>{login}</code> (cannot be changed)").format(
        login=html.escape(profile.login)
    )
    if profile.missing:
        text += "\n\n" + _("⚠️ Required for payments and not filled in yet: {fields}.").format(
            fields=missing_names(profile.missing)
        )
    else:
        text += "\n\n" + _("✅ Everything required for payments is filled in.")
    if profile.payments_blocked_by_company:
        text += "\n" + _("⏳ Payments are blocked until our staff verify your company details.")
    return text


def threshold_text(profile: Profile) -> str:
    if profile.low_balance_threshold_minor is None:
        return _("off")
    if profile.low_balance_threshold_display_minor is not None:
        amount = money(profile.low_balance_threshold_display_minor, profile.currency)
    else:
        amount = money(profile.low_balance_threshold_minor, profile.base_currency)
    return _("below {amount}").format(amount=amount)


def balance_shown(profile: Profile) -> str:
    if profile.balance_display_minor is None:
        return money(profile.balance_minor, profile.base_currency)
    return money(profile.balance_display_minor, profile.currency)


def general_text(profile: Profile, language: str) -> str:
    return _(
        "🔔 <b>General</b>\n"
        "Newsletter: <b>{newsletter}</b>\n"
        "Low-balance alert: <b>{threshold}</b>\n"
        "Auto-renewal of new orders: <b>{auto_renew}</b>\n"
        "Currency: <b>{currency}</b> (balance: {balance})\n"
        "Payment without authorization: <b>{pay}</b>\n"
        "Language: <b>{language}</b>\n"
        "{country_line}"
    ).format(
        newsletter=on_off(profile.newsletter),
        threshold=threshold_text(profile),
        auto_renew=on_off(profile.auto_renew_default),
        currency=profile.currency,
        balance=balance_shown(profile),
        pay=on_off(profile.pay_without_auth),
        language=LANGUAGE_NAMES.get(profile.language or language, language),
        country_line=(
            _("Country: <b>{country}</b> — to change it, open a ticket.").format(
                country=country_name(profile.country)
            )
            if profile.country
            else _("Country: <b>not specified</b> — set it once with the button below.")
        ),
    )


def profile_type_text(profile: Profile) -> str:
    if profile.profile_type != "company":
        return _("individual")
    # Whole phrases, not shared status words: Russian agrees them with each noun.
    text = (
        _("company «{name}», tax number {tax} (verified)")
        if profile.company_verified
        else _("company «{name}», tax number {tax} (waiting for verification)")
    )
    return text.format(name=esc(profile.company_name), tax=esc(profile.company_tax_id))


def email_status(profile: Profile) -> str:
    if not profile.email:
        return "—"
    text = _("{email} (confirmed)") if profile.email_confirmed else _("{email} (not confirmed)")
    return text.format(email=esc(profile.email))


def phone_status(profile: Profile) -> str:
    if not profile.phone:
        return "—"
    text = _("{phone} (verified)") if profile.phone_verified else _("{phone} (not verified)")
    return text.format(phone=esc(profile.phone))


def profile_text(profile: Profile, email_confirmable: bool = True) -> str:
    text = _(
        "👤 <b>Profile and contacts</b>\n"
        "Profile type: <b>{ptype}</b>\n"
        "Last name: <b>{last_name}</b>{last_req}\n"
        "First name: <b>{first_name}</b>{first_req}\n"
        "E-mail: <b>{email}</b>{email_req}\n"
        "Mobile phone: <b>{phone}</b>"
    ).format(
        ptype=profile_type_text(profile),
        last_name=esc(profile.last_name),
        last_req=required_mark(profile, "last_name"),
        first_name=esc(profile.first_name),
        first_req=required_mark(profile, "first_name"),
        email=email_status(profile),
        email_req=required_mark(profile, "email"),
        phone=phone_status(profile),
    )
    if profile.email and not profile.email_confirmed and not email_confirmable:
        text += "\n" + _("ℹ️ E-mail confirmation is not available: the bot cannot send e-mail.")
    return text


def mails_text(profile: Profile) -> str:
    return _(
        "✉️ <b>Notice e-mails</b>\n"
        "Invoices and orders: <b>{invoices}</b>\n"
        "Support: <b>{support}</b>\n"
        "Abuse reports: <b>{abuse}</b>"
    ).format(
        invoices=esc(profile.email_invoices),
        support=esc(profile.email_support),
        abuse=esc(profile.email_abuse),
    )


IP_LINES_SHOWN = 25  # a full list of long IPv6 ranges would not fit in one message


def ip_list_text(entries: list[str]) -> str:
    if not entries:
        return _("no restriction")
    shown = html.escape("\n".join(entries[:IP_LINES_SHOWN]))
    more = len(entries) - IP_LINES_SHOWN
    return "\n<code>" + shown + (f"\n… (+{more})" if more > 0 else "") + "</code>"


def security_text(profile: Profile) -> str:
    # Whole lines, not "set"/"not set" words: Russian agrees them with each noun.
    text = _(
        "🔐 <b>Security</b>\n{code_word_line}\nIP allow-list: <b>{ips}</b>\n"
        "Show last IP: <b>{show_ip}</b>\n{password_line}"
    ).format(
        code_word_line=(
            _("Code word: <b>set (cannot be viewed or changed)</b>")
            if profile.code_word_set
            else _("Code word: <b>not set</b>")
        ),
        ips=ip_list_text(profile.ip_allowlist),
        show_ip=on_off(profile.show_last_ip),
        password_line=_("Password: <b>set</b>")
        if profile.password_set
        else _("Password: <b>not set</b>"),
    )
    if profile.show_last_ip:
        text += "\n" + _("Last IP: <b>{ip}</b>").format(
            ip=esc(profile.last_ip) if profile.last_ip else _("unknown")
        )
    return text


def address_text(profile: Profile) -> str:
    return _(
        "🏠 <b>Postal address</b>\n"
        "{country_line}\n"
        "Region: <b>{region}</b>\n"
        "City: <b>{city}</b>{city_req}\n"
        "Postcode: <b>{postcode}</b>\n"
        "Address: <b>{address}</b>{address_req}"
    ).format(
        country_line=(
            _("Country: <b>{country}</b> (change it through a ticket)").format(
                country=country_name(profile.country)
            )
            if profile.country
            else _("Country: <b>not specified</b> (set it once with the button below)")
        ),
        region=esc(profile.region),
        city=esc(profile.city),
        city_req=required_mark(profile, "city"),
        postcode=esc(profile.postcode),
        address=esc(profile.address),
        address_req=required_mark(profile, "address"),
    )


def screen(
    group: str, profile: Profile, language: str, email_confirmable: bool = True
) -> tuple[str, InlineKeyboardMarkup]:
    """`email_confirmable`: e-mail can be sent (SMTP is configured)."""
    if group == "general":
        return general_text(profile, language), general_kb(profile)
    if group == "profile":
        return profile_text(profile, email_confirmable), profile_kb(profile, email_confirmable)
    if group == "mails":
        return mails_text(profile), mails_kb()
    if group == "security":
        return security_text(profile), security_kb(profile)
    if group == "address":
        return address_text(profile), address_kb(profile)
    return root_text(profile), root_kb(profile)


def saved_line(name: str, value: str | None) -> str:
    if value is None:
        return _("✅ {field} cleared.").format(field=field_label(name))
    return _("✅ {field} saved: <b>{value}</b>").format(
        field=field_label(name), value=html.escape(value)
    )


def edit_prompt(name: str, current: str | None) -> str:
    return _("✏️ {prompt}\nNow: {current}\n\n/cancel — leave without changes.").format(
        prompt=field_prompt(name), current=esc(current)
    )


def password_prompt() -> str:
    return _(
        "🔑 Send the new password. Rules: {min} to {max} characters, at least one letter and "
        "one digit, no spaces. Your message will be deleted right away.\n\n"
        "/cancel — leave without changes."
    ).format(min=PASSWORD_MIN, max=PASSWORD_MAX)


def join_lines(header: str | None, text: str) -> str:
    return f"{header}\n\n{text}" if header else text


def code_result_text(check: CodeCheck) -> str:
    if check.status == "wrong":
        return _("❌ Wrong code. Attempts left: {left}.").format(left=check.attempts_left)
    if check.status == "exhausted":
        return _("❌ Too many wrong codes. Request a new one.")
    if check.status == "expired":
        return _("❌ The code has expired. Request a new one.")
    return _("❌ There is no code waiting for confirmation. Request a new one.")


def fill_prompt(name: str, step: int, total: int) -> str:
    return _("✍️ Step {step} of {total}. {prompt}\n\n/cancel — stop here.").format(
        step=step, total=total, prompt=field_prompt(name)
    )


def country_prompt() -> str:
    return _(
        "🌍 Send your country: its two-letter code (e.g. DE, US, GB) or its name. You can set "
        "it once; later changes go through a ticket.\n\n/cancel — leave without changes."
    )


def country_confirm_text(code: str) -> str:
    return _(
        "🌍 Country: <b>{country}</b> ({code}). It can be set only once: later changes go "
        "through a ticket. Save it?"
    ).format(country=html.escape(country_name(code)), code=code)


def country_saved_line(code: str) -> str:
    return _("✅ Country saved: <b>{country}</b>").format(country=html.escape(country_name(code)))
