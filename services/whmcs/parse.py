"""WHMCS's JSON quirks, turned into plain Python values.

- Numbers come as strings or ints, sometimes as JSON floats: "12.50", 12, "0.00", 15.95.
- Money is a decimal with two places in the client's currency; we keep integer minor units
  of that currency (`services.money.to_minor`), computed with Decimal, never float.
- Dates are "YYYY-MM-DD" (or "YYYY-MM-DD HH:MM:SS"); "0000-00-00" means none.
- A nested list `products.product[]` may be a list, a single object, "" or missing.
- Paged reads take `limitstart`/`limitnum` and answer `totalresults`.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import date, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from services.money import to_minor

JsonObject = dict[str, Any]
_NUMBER_RE = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")
_EMPTY_DATES = {"", "0000-00-00", "0000-00-00 00:00:00"}


def as_str(value: object) -> str:
    return "" if value is None else str(value)


def as_int(value: object, default: int = 0) -> int:
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    text = as_str(value).strip()
    if not text:
        return default
    try:
        return int(Decimal(text))
    except InvalidOperation:
        return default


def as_optional_int(value: object) -> int | None:
    """`None`, "" and 0 (WHMCS's "no such thing") all become None."""
    number = as_int(value)
    return number or None


def as_decimal(value: object) -> Decimal:
    if isinstance(value, bool):
        return Decimal(int(value))
    if isinstance(value, int | Decimal):
        return Decimal(value)
    if isinstance(value, float):
        return Decimal(repr(value))  # the shortest text of the float, e.g. 15.95
    text = as_str(value).strip()
    try:
        return Decimal(text) if text else Decimal(0)
    except InvalidOperation:
        return Decimal(0)


def money_minor(value: object, currency: str) -> int:
    return to_minor(as_decimal(value), currency)


def formatted_money(value: object) -> Decimal:
    """A formatted amount such as "$-8.67 USD" (UpgradeProduct's `price`) → Decimal("-8.67")."""
    match = _NUMBER_RE.search(as_str(value).replace(",", ""))
    return Decimal(match.group()) if match else Decimal(0)


def as_bool(value: object) -> bool:
    if isinstance(value, bool):
        return value
    text = as_str(value).strip().lower()
    return text not in {"", "0", "false", "no", "off", "null"}


def as_date(value: object) -> date | None:
    text = as_str(value).strip()
    if text in _EMPTY_DATES or text.startswith("0000-00-00"):
        return None
    try:
        return date.fromisoformat(text[:10])
    except ValueError:
        return None


def as_datetime(value: object) -> datetime | None:
    text = as_str(value).strip()
    if text in _EMPTY_DATES or text.startswith("0000-00-00"):
        return None
    try:
        return datetime.fromisoformat(text)
    except ValueError:
        return None


def nested_list(body: Mapping[str, Any], outer: str, inner: str) -> list[JsonObject]:
    """`body[outer][inner]` as a list of objects, whatever shape WHMCS chose for it."""
    container = body.get(outer)
    items = container.get(inner) if isinstance(container, Mapping) else container
    if isinstance(items, Mapping):
        return [dict(items)]
    if isinstance(items, list):
        return [dict(item) for item in items if isinstance(item, Mapping)]
    return []  # "", None, missing


PageFetcher = Callable[[int, int], Awaitable[JsonObject]]


async def iterate_pages(
    fetch_page: PageFetcher, outer: str, inner: str, page_size: int = 100
) -> AsyncIterator[JsonObject]:
    """Every item of a paged read: `fetch_page(limitstart, limitnum)` until `totalresults`.

    Stops as well on a page with no items, so a `totalresults` that changes under us (an item
    deleted meanwhile) cannot loop forever.
    """
    start = 0
    while True:
        body = await fetch_page(start, page_size)
        items = nested_list(body, outer, inner)
        for item in items:
            yield item
        start += len(items)
        if not items or start >= as_int(body.get("totalresults")):
            return
