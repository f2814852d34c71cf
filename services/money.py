"""Money helpers: integer minor units per currency, parsing user input, Babel formatting."""

from __future__ import annotations

import functools
import re
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal, InvalidOperation

from babel.numbers import format_currency, get_currency_precision, get_currency_symbol

from services.errors import ValidationFailed

# Telegram Stars have no fractional part; Babel does not know the code.
_EXPONENT_OVERRIDES = {"XTR": 0}
_AMOUNT_RE = re.compile(r"([0-9]+)(?:[.,]([0-9]+))?")  # ASCII digits only: not "²" or "٣"
# A typed amount has at most this many digits before the point (leading zeros aside): far
# above any top-up, threshold or manual adjustment, and well inside Decimal's precision.
AMOUNT_MAX_DIGITS = 12
# The bound of an amount in minor units carried by callback data (12 digits and 3 decimals).
AMOUNT_MINOR_MAX = 10 ** (AMOUNT_MAX_DIGITS + 3) - 1


def exponent(currency: str) -> int:
    currency = currency.upper()
    if currency in _EXPONENT_OVERRIDES:
        return _EXPONENT_OVERRIDES[currency]
    return get_currency_precision(currency)


def to_decimal(minor: int, currency: str) -> Decimal:
    return Decimal(minor).scaleb(-exponent(currency))


def to_minor(amount: Decimal, currency: str, rounding: str = ROUND_HALF_UP) -> int:
    quantum = Decimal(1).scaleb(-exponent(currency))
    return int(amount.quantize(quantum, rounding=rounding).scaleb(exponent(currency)))


def convert(
    minor: int,
    from_currency: str,
    to_currency: str,
    rates: dict[str, Decimal],
    rounding: str = ROUND_HALF_UP,
) -> int:
    """Convert through the rates table (units of currency per 1 unit of the base currency)."""
    if from_currency == to_currency:
        return minor
    amount = to_decimal(minor, from_currency) / rates[from_currency] * rates[to_currency]
    return to_minor(amount, to_currency, rounding)


def convert_down(
    minor: int, from_currency: str, to_currency: str, rates: dict[str, Decimal]
) -> int:
    return convert(minor, from_currency, to_currency, rates, ROUND_DOWN)


def convert_up(minor: int, from_currency: str, to_currency: str, rates: dict[str, Decimal]) -> int:
    return convert(minor, from_currency, to_currency, rates, ROUND_UP)


def parse_amount(text: str, currency: str) -> int:
    """Parse '12', '12.5', '12,50', '1 000' into minor units; raise ValidationFailed with a code:
    not_a_number, not_positive, too_many_decimals(places), too_large (more than
    AMOUNT_MAX_DIGITS digits before the point). Only ASCII digits count as digits."""
    cleaned = text.strip().replace(" ", "").replace("\u00a0", "")
    if cleaned.startswith("-"):
        raise ValidationFailed("not_positive")
    match = _AMOUNT_RE.fullmatch(cleaned) if cleaned.isascii() else None
    if match is None:
        raise ValidationFailed("not_a_number")
    whole, fraction = match.group(1), match.group(2) or ""
    # Counted on the digits as typed, before Decimal arithmetic could overflow its context.
    if len(whole.lstrip("0")) > AMOUNT_MAX_DIGITS:
        raise ValidationFailed("too_large")
    try:
        value = Decimal(cleaned.replace(",", "."))
    except InvalidOperation:
        raise ValidationFailed("not_a_number") from None
    if value <= 0:
        raise ValidationFailed("not_positive")
    if len(fraction) > exponent(currency):
        raise ValidationFailed("too_many_decimals", places=exponent(currency))
    return to_minor(value, currency)


# Symbols for currencies a locale's data spells as a bare code ("RUB1,234.50" in English).
_FALLBACK_SYMBOLS = {"RUB": "₽"}


@functools.lru_cache(maxsize=8192)
def format_money(minor: int, currency: str, locale: str) -> str:
    """`minor` units of `currency` as `locale` writes them. Cached: Babel takes ~0.1 ms per
    amount, and a bot shows the same few prices over and over."""
    currency = currency.upper()
    if currency == "XTR":
        return f"{minor} ⭐"
    amount = to_decimal(minor, currency)
    symbol = _FALLBACK_SYMBOLS.get(currency)
    if symbol and get_currency_symbol(currency, locale) == currency:
        digits = "0" * exponent(currency)
        pattern = f"'{symbol}'#,##0" + (f".{digits}" if digits else "")
        return format_currency(amount, currency, format=pattern, locale=locale)
    return format_currency(amount, currency, locale=locale)


def round_significant(minor: int, currency: str, rounding: str, digits: int = 2) -> int:
    """`minor` rounded to `digits` significant digits, but never finer than the currency's
    minor unit: a top-up limit shown as $1.10 or $10,000, not $1.08 or $10,800."""
    value = to_decimal(minor, currency)
    if value <= 0:
        return minor
    minor_unit = Decimal(1).scaleb(-exponent(currency))
    quantum = max(Decimal(1).scaleb(value.adjusted() - digits + 1), minor_unit)
    return to_minor(value.quantize(quantum, rounding=rounding), currency)


NICE_STEPS = (Decimal(1), Decimal(2), Decimal("2.5"), Decimal(5), Decimal(10))


def nice_amount(minor: int, currency: str) -> int:
    """The round amount (1, 2, 2.5 or 5 times a power of ten) nearest to `minor` by ratio: a
    preset converted from 25 EUR is $25, not $27, and ₽2,500, not ₽2,462."""
    value = to_decimal(minor, currency)
    if value <= 0:
        return minor
    steps = [step.scaleb(value.adjusted()) for step in NICE_STEPS]
    nearest = min(steps, key=lambda step: max(step / value, value / step))
    return to_minor(nearest, currency)
