"""CallbackData factories shared across sections (each stays under Telegram's 64 bytes).
Sections define their own factories in keyboards/<section>.py."""

from __future__ import annotations

from aiogram.filters.callback_data import CallbackData

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

    amount_minor: int = 0


class NewTicketCb(CallbackData, prefix="nt"):
    """Open a prefilled ticket from another section: `topic` is a key the tickets section maps
    to a department and a translated subject (e.g. "country")."""

    topic: str


class CartCb(CallbackData, prefix="cart"):
    """The remembered order cart: `action` is "complete" (pay from the balance and create the
    order) or "drop". Shown after a top-up by the payments section; handled by new-order."""

    action: str
