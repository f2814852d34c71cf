"""What the embedded billing needs to know from the application settings."""

from __future__ import annotations

import ipaddress
from dataclasses import dataclass, field
from decimal import Decimal


@dataclass(frozen=True)
class BillingConfig:
    base_currency: str = "EUR"
    currencies: tuple[str, ...] = ("EUR", "USD", "RUB")
    static_rates: dict[str, Decimal] = field(default_factory=dict)
    stars_per_base_unit: Decimal = Decimal("50")
    ip_pool: str = "203.0.113.10-203.0.113.250"
    # Per-customer limits (0: none): tickets not closed, tickets created within an hour,
    # unpaid top-up invoices.
    max_open_tickets: int = 3
    max_tickets_per_hour: int = 5
    max_open_invoices: int = 5
    # How long the account every update looks up may be answered from memory between the
    # commits that drop it (services/embedded/account_cache.py); 0: always read.
    account_cache_seconds: float = 30.0

    def ip_pool_range(self) -> tuple[ipaddress.IPv4Address, ipaddress.IPv4Address]:
        first, _, last = self.ip_pool.partition("-")
        return ipaddress.IPv4Address(first.strip()), ipaddress.IPv4Address(last.strip())


def parse_static_rates(text: str) -> dict[str, Decimal]:
    """'USD=1.08,RUB=98.5' -> {'USD': Decimal('1.08'), 'RUB': Decimal('98.5')}."""
    rates: dict[str, Decimal] = {}
    for item in filter(None, (part.strip() for part in text.split(","))):
        code, _, value = item.partition("=")
        rates[code.strip().upper()] = Decimal(value.strip())
    return rates
