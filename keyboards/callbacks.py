"""CallbackData factories shared across sections (each stays under Telegram's 64 bytes).
Sections define their own factories in keyboards/<section>.py.

Callback data comes back from the client and can be forged, so every int field of every
factory is one of the bounded types below: `unpack` (which `Factory.filter()` calls) refuses a
value out of range, the press matches no handler and the fallback router answers "out of date".
No handler ever sees an id, page or amount the database or the money code cannot take."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from enum import StrEnum
from typing import Annotated

from aiogram.filters.callback_data import CallbackData
from pydantic import Field

from services.money import AMOUNT_MINOR_MAX
from services.validation import ID_MAX

MAX_PAGE = 10_000  # page numbers of the lists: far beyond any real list
MAX_MONTHS = 120  # a billing period
# A moment as microseconds since the epoch (keyboards.orders.stamp): at most datetime's limit.
STAMP_MAX = (datetime.max.replace(tzinfo=UTC) - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(
    microseconds=1
)

Id = Annotated[int, Field(ge=1, le=ID_MAX)]
IdOrZero = Annotated[int, Field(ge=0, le=ID_MAX)]  # 0: none
PageNumber = Annotated[int, Field(ge=0, le=MAX_PAGE)]
Months = Annotated[int, Field(ge=0, le=MAX_MONTHS)]
AmountMinor = Annotated[int, Field(ge=0, le=AMOUNT_MINOR_MAX)]
SignedAmountMinor = Annotated[int, Field(ge=-AMOUNT_MINOR_MAX, le=AMOUNT_MINOR_MAX)]
Stamp = Annotated[int, Field(ge=0, le=STAMP_MAX)]

# Sections reachable from the main menu; MenuCb.section is one of these.
SECTIONS = (
    "main",
    "orders",
    "neworder",
    "invoices",
    "balance",
    "topup",
    "tickets",
    "newticket",
    "settings",
    "help",
    "language",
)


class MenuCb(CallbackData, prefix="menu"):
    section: str


class LangCb(CallbackData, prefix="lang"):
    code: str


class TopupCb(CallbackData, prefix="tu"):
    """Start a top-up of exactly `amount_minor` (base currency): "top up the shortfall" buttons
    of orders and alerts lead here; 0 means "let the user choose"."""

    amount_minor: AmountMinor = 0


class NewTicketCb(CallbackData, prefix="nt"):
    """Open a prefilled ticket from another section: `topic` is a key the tickets section maps
    to a department and a translated subject (e.g. "country")."""

    topic: str


class CartAction(StrEnum):
    COMPLETE = "complete"  # pay from the balance and create the order
    RECEIPT = "receipt"  # the same, pressed on a payment receipt: the receipt is kept
    DROP = "drop"


class CartCb(CallbackData, prefix="cart"):
    """The remembered order cart: `action` is a CartAction. Shown after a top-up by the
    payments section; handled by new-order."""

    action: CartAction
