"""Orders of an account, renewals, tariff changes, cancellation and the new-order cart.

Money is in integer minor units of the billing's base currency. Every method that takes an
order id also takes the caller's `account_id` and raises NotFound when the order is not theirs.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from services.contracts.common import Page, read_only

PENDING, ACTIVE, EXPIRED, SUSPENDED, CANCELLED = (
    "pending",
    "active",
    "expired",
    "suspended",
    "cancelled",
)
STATUSES = (ACTIVE, PENDING, EXPIRED, SUSPENDED, CANCELLED)
# Statuses a renewal accepts; a renewal makes the order active again.
RENEWABLE = (ACTIVE, EXPIRED, SUSPENDED)
SORT_KEYS = ("created", "status", "cost", "paid_until")


def renewal_key(order_id: int, period_start: datetime) -> str:
    """The ledger idempotency key of one renewal: (order, period start). A period is charged
    once, whoever renews it (the user's button, the auto-renewal job, a retry)."""
    return f"renew:{order_id}:{period_start.isoformat()}"


@dataclass(frozen=True, slots=True)
class Order:
    id: int
    account_id: int
    tariff_id: int
    tariff_name: str
    product_type: str
    status: str
    ip_address: str | None
    period_months: int
    price_minor: int  # per period, base currency
    created_at: datetime
    paid_until: datetime
    auto_renew: bool
    cancel_at_period_end: bool
    cancelled_at: datetime | None = None
    # A cancelled order's last address, given back to the pool (ip_address is then None).
    released_ip: str | None = None

    def days_left(self, now: datetime) -> int:
        """Whole days until paid-until, a started day counting as one; 0 once it has passed."""
        seconds = (self.paid_until - now).total_seconds()
        return max(0, math.ceil(seconds / 86400))

    def is_overdue(self, now: datetime) -> bool:
        """Active on paper but the paid period is over (the overdue job has not run yet)."""
        return self.status == ACTIVE and self.paid_until <= now

    def display_status(self, now: datetime) -> str:
        return EXPIRED if self.is_overdue(now) else self.status

    @property
    def renewable(self) -> bool:
        return self.status in RENEWABLE

    @property
    def monthly_price_minor(self) -> int:
        """The price per month (what the lists sort "cost" by: a year's price is not twelve
        times dearer than a month's); the period's price when the order has no period."""
        if self.period_months <= 0:
            return self.price_minor
        return round(self.price_minor / self.period_months)

    def next_charge(self) -> datetime | None:
        """When auto-renewal will charge the balance next, or None when it will not."""
        if self.status == ACTIVE and self.auto_renew and not self.cancel_at_period_end:
            return self.paid_until
        return None


@dataclass(frozen=True, slots=True)
class Cart:
    """An order the user could not pay yet (one per account)."""

    account_id: int
    tariff_id: int
    tariff_name: str
    product_type: str
    months: int
    price_minor: int
    created_at: datetime


@dataclass(frozen=True, slots=True)
class Quote:
    """What an action would cost now. `amount_minor` > 0 is charged, < 0 is credited back.
    `missing_minor` is how much the balance lacks for a charge (0 when it covers it)."""

    amount_minor: int
    balance_minor: int
    currency: str
    tariff_id: int
    tariff_name: str
    months: int
    paid_until: datetime  # paid-until after the action
    price_minor: int = 0  # the tariff's price for `months` (a change: the new price)
    remaining_days: int = 0  # tariff change: whole days of the paid period the amount covers
    period_days: int = 0  # tariff change: length of the current paid period in days

    @property
    def missing_minor(self) -> int:
        return max(0, self.amount_minor - self.balance_minor)


class OrdersApi(Protocol):
    @read_only
    async def list_orders(
        self,
        account_id: int,
        *,
        query: str | None = None,
        sort: str = "created",
        descending: bool = True,
        offset: int = 0,
        limit: int = 5,
    ) -> Page[Order]:
        """The caller's orders; `query` matches the ID, the tariff name or the IP address;
        `sort` is one of SORT_KEYS (ValidationFailed otherwise)."""

    @read_only
    async def get_order(self, account_id: int, order_id: int) -> Order: ...

    @read_only
    async def renewal_options(self, account_id: int, order_id: int) -> list[Quote]:
        """One quote per period the order's tariff offers (InvalidState if not renewable)."""

    @read_only
    async def quote_renewal(self, account_id: int, order_id: int, months: int) -> Quote:
        """Price and new paid-until of a renewal; ValidationFailed('period_not_offered'),
        InvalidState for an order that cannot be renewed."""

    async def renew_order(
        self,
        account_id: int,
        order_id: int,
        months: int,
        *,
        idempotency_key: str | None = None,
        period_start: datetime | None = None,
    ) -> Order:
        """Debit the price and extend paid-until in the caller's transaction: from paid-until
        while still active, from now once expired; expired/suspended become active. The
        default key is renewal_key(order, paid_until), so one period is charged once; a used
        key returns the order unchanged. `period_start` (the paid-until the user saw) makes a
        repeated confirmation a no-op once that period is paid. Cancelled or pending orders:
        InvalidState; a period not offered: ValidationFailed; InsufficientFunds."""

    @read_only
    async def change_tariff_options(self, account_id: int, order_id: int) -> list[Quote]:
        """Quotes for every other active tariff of the same product type with a price for the
        order's period (InvalidState when the order's tariff cannot be changed now)."""

    @read_only
    async def quote_tariff_change(self, account_id: int, order_id: int, tariff_id: int) -> Quote:
        """Prorated difference for the rest of the paid period (see README, Orders rules)."""

    async def change_tariff(
        self,
        account_id: int,
        order_id: int,
        tariff_id: int,
        *,
        expected_amount_minor: int | None = None,
    ) -> Order:
        """Charge (upgrade) or credit back (downgrade) the prorated difference and switch the
        tariff. ValidationFailed('quote_changed') when the amount differs from the one the
        user confirmed; InvalidState when the order already has that tariff."""

    async def cancel_order(self, account_id: int, order_id: int, *, immediately: bool) -> Order:
        """At period end: no renewal, cancelled when paid-until passes. Immediately: cancelled
        now, no refund, the IP address returns to the pool."""

    async def resume_order(self, account_id: int, order_id: int) -> Order:
        """Undo a cancellation scheduled for the end of the period."""

    async def set_order_auto_renew(
        self, account_id: int, order_id: int, enabled: bool
    ) -> Order: ...

    @read_only
    async def quote_new_order(self, account_id: int, tariff_id: int, months: int) -> Quote: ...

    async def place_order(
        self, account_id: int, tariff_id: int, months: int, *, idempotency_key: str | None = None
    ) -> Order:
        """Debit the price and create the order (pending, an IP from the pool, then active).
        A repeated `idempotency_key` returns the order created the first time."""

    @read_only
    async def get_cart(self, account_id: int) -> Cart | None: ...

    async def save_cart(self, account_id: int, tariff_id: int, months: int) -> Cart: ...

    async def clear_cart(self, account_id: int) -> None: ...

    async def complete_cart(self, account_id: int) -> Order:
        """Place the remembered order from the balance and forget the cart (NotFound when
        there is no cart; InsufficientFunds keeps it)."""
