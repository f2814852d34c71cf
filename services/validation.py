"""Validation of what a user types on the Settings page. Pure functions: each returns the
normalised value or raises `ValidationFailed(code, **params)`; handlers turn the code into a
localized message. Over-long input is always refused (never truncated).

Codes: empty, too_long(limit), name_chars, email_invalid, phone_invalid, phone_no_country,
text_chars, postcode_invalid, tax_id_invalid, country_invalid, password_short(min),
password_long(max), password_weak, password_spaces, code_word_short(min),
ip_list_invalid(errors), ip_list_too_long.
"""

from __future__ import annotations

import ipaddress
import re
import unicodedata
from dataclasses import dataclass

from babel import Locale

from services.contracts.profile import OPTIONAL_FIELDS
from services.errors import ValidationFailed

NAME_MAX = 100
EMAIL_MAX = 254
TEXT_LIMITS = {
    "region": 100,
    "city": 100,
    "postcode": 20,
    "address": 300,
    "company_name": 256,
    "company_tax_id": 64,
}
PASSWORD_MIN, PASSWORD_MAX = 8, 128
CODE_WORD_MIN, CODE_WORD_MAX = 4, 64
IP_LIST_MAX_LINES = 100
IP_LINE_MAX = 100
# Two-letter territory codes Babel (CLDR) knows that are no ISO 3166-1 country: groupings,
# "unknown region", pseudo-locales and the exceptionally reserved codes.
_NOT_COUNTRIES = frozenset(
    {"EU", "EZ", "UN", "ZZ", "QO", "XA", "XB", "AC", "CP", "DG", "EA", "IC", "TA"}
)

_EMAIL_LOCAL = re.compile(r"^[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(\.[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*$")
_EMAIL_LABEL = re.compile(r"^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$")
_POSTCODE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 -]*$")
_TAX_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9 /.-]*$")
_PHONE_SEPARATORS = re.compile(r"[\s().-]")
_ASCII_DIGITS = re.compile(r"[0-9]+")

# Ids of billing objects are INTEGER columns; PostgreSQL's int4 is the narrowest of the two
# databases. A number outside 1..ID_MAX names nothing and never reaches a query.
ID_MAX = 2**31 - 1


def ascii_digits(text: str) -> bool:
    """Only 0-9, at least one. `str.isdigit()` and `int()` also take "²" and "٣"."""
    return text.isascii() and _ASCII_DIGITS.fullmatch(text) is not None


def parse_id(text: str) -> int | None:
    """An object id typed by a person ("12" or "#12"), or None when it cannot be one."""
    number = text.strip().removeprefix("#")
    if not ascii_digits(number) or len(number) > len(str(ID_MAX)):
        return None
    value = int(number)
    return value if 1 <= value <= ID_MAX else None


def _limit(value: str, limit: int) -> None:
    if len(value) > limit:
        raise ValidationFailed("too_long", limit=limit)


def _paste_limit(text: str, limit: int) -> None:
    """Refuse a huge paste before collapsing its whitespace, naming the field's own limit
    (the one the prompt gives), not the slack allowed for the whitespace."""
    if len(text) > limit * 2:
        raise ValidationFailed("too_long", limit=limit)


def _no_control_chars(value: str) -> None:
    if any(unicodedata.category(ch) in ("Cc", "Cf") and ch not in "\n" for ch in value):
        raise ValidationFailed("text_chars")


def validate_name(text: str) -> str:
    """Last or first name: letters (any script), spaces, hyphens and apostrophes; 1–100."""
    _paste_limit(text, NAME_MAX)  # whitespace collapses below
    value = " ".join(text.split())
    if not value:
        raise ValidationFailed("empty")
    _limit(value, NAME_MAX)
    if not all(ch.isalpha() or ch in " -'’" for ch in value) or not any(
        ch.isalpha() for ch in value
    ):
        raise ValidationFailed("name_chars")
    return value


def validate_email(text: str) -> str:
    """A single address `local@domain.tld`; the domain is lowercased."""
    value = text.strip()
    if not value:
        raise ValidationFailed("empty")
    _limit(value, EMAIL_MAX)
    local, at, domain = value.rpartition("@")
    if not at or not local or len(local) > 64 or not _EMAIL_LOCAL.match(local):
        raise ValidationFailed("email_invalid")
    try:
        domain = domain.encode("idna").decode("ascii").lower()
    except UnicodeError:
        raise ValidationFailed("email_invalid") from None
    labels = domain.split(".")
    if len(labels) < 2 or not all(_EMAIL_LABEL.match(label) for label in labels):
        raise ValidationFailed("email_invalid")
    if labels[-1].isdigit():
        raise ValidationFailed("email_invalid")
    return f"{local}@{domain}"


def normalize_phone(text: str, *, assume_plus: bool = False) -> str:
    """E.164: '+' then 8–15 digits, the first not 0. Typed numbers must carry the country code
    ('+' or '00'); Telegram contacts come without '+', so `assume_plus` adds it."""
    value = text.strip()
    if not value:
        raise ValidationFailed("empty")
    _limit(value, 32)
    value = _PHONE_SEPARATORS.sub("", value)
    if value.startswith("00"):
        value = "+" + value[2:]
    if assume_plus and not value.startswith("+"):
        value = "+" + value
    digits = value[1:]
    if not value.startswith("+"):
        if ascii_digits(value):
            raise ValidationFailed("phone_no_country")
        raise ValidationFailed("phone_invalid")
    if not ascii_digits(digits) or not 8 <= len(digits) <= 15 or digits[0] == "0":
        raise ValidationFailed("phone_invalid")
    return value


def validate_text(field: str, text: str, *, required: bool) -> str | None:
    """Region, city, postcode, street address, company name, tax number."""
    limit = TEXT_LIMITS[field]
    _paste_limit(text, limit)
    value = " ".join(text.split())
    if not value:
        if required:
            raise ValidationFailed("empty")
        return None
    _limit(value, limit)
    _no_control_chars(value)
    if field == "postcode" and not _POSTCODE.match(value):
        raise ValidationFailed("postcode_invalid")
    if field == "company_tax_id" and (not _TAX_ID.match(value) or len(value) < 4):
        raise ValidationFailed("tax_id_invalid")
    if not any(ch.isalnum() for ch in value):
        raise ValidationFailed("text_chars")
    return value


def validate_profile_field(name: str, text: str) -> str | None:
    """A text field of the profile (services.contracts.profile.TEXT_FIELDS, or the main
    "email") as the billing stores it; None clears an optional field. The one dispatch the
    billing's setters and the web forms share, so the chat and the web refuse the same."""
    if name in ("last_name", "first_name"):
        return validate_name(text)
    if name == "email":
        return validate_email(text)
    if name.startswith("email_"):
        return validate_email(text) if text.strip() else None
    return validate_text(name, text, required=name not in OPTIONAL_FIELDS)


def validate_country(text: str) -> str:
    """An ISO 3166-1 alpha-2 code of a country Babel knows ("de" -> "DE"); not a grouping such
    as EU or UN, nor the "unknown region" ZZ."""
    value = text.strip().upper()
    if not (len(value) == 2 and value.isascii() and value.isalpha()):
        raise ValidationFailed("country_invalid")
    if value in _NOT_COUNTRIES or value not in Locale("en").territories:
        raise ValidationFailed("country_invalid")
    return value


def validate_password(password: str) -> str:
    """8–128 characters, no spaces, at least one letter and one digit. Never normalised."""
    if len(password) > PASSWORD_MAX:
        raise ValidationFailed("password_long", max=PASSWORD_MAX)
    if len(password) < PASSWORD_MIN:
        raise ValidationFailed("password_short", min=PASSWORD_MIN)
    if any(ch.isspace() for ch in password):
        raise ValidationFailed("password_spaces")
    if not any(ch.isalpha() for ch in password) or not any(ch.isdigit() for ch in password):
        raise ValidationFailed("password_weak")
    return password


def validate_code_word(text: str) -> str:
    value = text.strip()
    if len(value) > CODE_WORD_MAX:
        raise ValidationFailed("too_long", limit=CODE_WORD_MAX)
    if len(value) < CODE_WORD_MIN:
        raise ValidationFailed("code_word_short", min=CODE_WORD_MIN)
    _no_control_chars(value)
    return value


# ---- IP allow-list --------------------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class IpLineError:
    line: int  # 1-based line number in the user's text
    text: str  # the line as typed (stripped, cut to 40 characters for display)
    reason: str  # not_an_ip, reversed_range, mixed_versions, too_long, cidr


IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


def _address(text: str) -> IPAddress | None:
    try:
        return ipaddress.ip_address(text.strip())
    except ValueError:
        return None


def _parse_ip_line(line: str) -> tuple[str | None, str | None]:
    """(normalised entry, None) or (None, reason)."""
    if len(line) > IP_LINE_MAX:
        return None, "too_long"
    if "/" in line:
        return None, "cidr"
    start_text, dash, end_text = line.partition("-")
    start = _address(start_text)
    if not dash:
        return (str(start), None) if start else (None, "not_an_ip")
    end = _address(end_text)
    if start is None or end is None:
        return None, "not_an_ip"
    if start.version != end.version:
        return None, "mixed_versions"
    if start > end:  # type: ignore[operator]
        return None, "reversed_range"
    if start == end:
        return str(start), None
    return f"{start}-{end}", None


def parse_ip_allowlist(text: str) -> tuple[list[str], list[IpLineError]]:
    """One IPv4/IPv6 address or `start-end` range per line. Blank lines are skipped, entries
    are normalised (compressed IPv6, `a-a` becomes `a`), exact duplicates are dropped (the
    first stays). Returns (entries, errors); the caller saves nothing when errors is not
    empty. An empty list means no restriction."""
    entries: list[str] = []
    errors: list[IpLineError] = []
    for number, raw in enumerate(text.splitlines(), start=1):
        line = raw.strip()
        if not line:
            continue
        entry, reason = _parse_ip_line(line)
        if reason is not None:
            shown = line if len(line) <= 40 else line[:39] + "…"
            errors.append(IpLineError(number, shown, reason))
        elif entry not in entries:
            entries.append(entry)  # type: ignore[arg-type]
    if len(entries) > IP_LIST_MAX_LINES:
        raise ValidationFailed("ip_list_too_long", limit=IP_LIST_MAX_LINES)
    return entries, errors


def validate_ip_allowlist(entries: list[str]) -> list[str]:
    """Re-check already parsed entries (the service side of the same rule)."""
    parsed, errors = parse_ip_allowlist("\n".join(entries))
    if errors:
        raise ValidationFailed("ip_list_invalid", errors=errors)
    return parsed


def ip_allowed(ip: str, entries: list[str]) -> bool:
    """Does the allow-list admit `ip`? An empty list admits everyone."""
    if not entries:
        return True
    address = _address(ip)
    if address is None:
        return False
    for entry in entries:
        start_text, dash, end_text = entry.partition("-")
        start = _address(start_text)
        end = _address(end_text) if dash else start
        if start is None or end is None or start.version != address.version:
            continue
        if start <= address <= end:  # type: ignore[operator]
            return True
    return False
