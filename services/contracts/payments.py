"""Currencies and exchange rates, invoices, Telegram payments (cards and Stars) and refunds."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import ROUND_DOWN, ROUND_HALF_UP, ROUND_UP, Decimal
from typing import Protocol

from services.contracts.common import Page, read_only
from services.money import exponent, to_decimal
from services.validation import ascii_digits, parse_id

STARS = "XTR"


@dataclass(frozen=True, slots=True)
class RateQuote:
    """One fetched rate: units of `currency` per 1 unit of the base currency on `rate_date`."""

    currency: str
    rate: Decimal
    rate_date: date
    source: str


@dataclass(frozen=True, slots=True)
class Rates:
    """The rates in force: stored (fetched) values overlaid with the static ones from the
    configuration. `rates` always holds the base currency (1) and only currencies with a rate."""

    base_currency: str
    rates: dict[str, Decimal]
    stars_per_base_unit: Decimal
    rate_date: date | None = None  # the oldest fetched rate in use; None: all static
    sources: tuple[str, ...] = ()  # e.g. ("ecb", "cbr"), "static" when configured ones are used
    currencies: tuple[str, ...] = field(default_factory=tuple)  # supported, in configured order

    def has(self, currency: str) -> bool:
        return currency in self.rates

    def available(self) -> list[str]:
        """Supported currencies that can be converted right now, in the configured order."""
        return [c for c in self.currencies if c in self.rates]

    def convert(
        self, minor: int, from_currency: str, to_currency: str, rounding: str = ROUND_HALF_UP
    ) -> int:
        from services.money import convert

        return convert(minor, from_currency, to_currency, self.rates, rounding)

    def rate(self, from_currency: str, to_currency: str) -> Decimal:
        """Units of `to_currency` per unit of `from_currency` (both must have a rate)."""
        return self.rates[to_currency] / self.rates[from_currency]

    def stars_for(self, base_minor: int) -> int:
        """Telegram Stars that buy `base_minor` of the base currency (rounded up, at least 1)."""
        stars = (to_decimal(base_minor, self.base_currency) * self.stars_per_base_unit).quantize(
            Decimal(1), rounding=ROUND_UP
        )
        return max(1, int(stars))

    def base_for_stars(self, stars: int) -> int:
        amount = Decimal(stars) / self.stars_per_base_unit
        quantum = Decimal(1).scaleb(-exponent(self.base_currency))
        return int(
            amount.quantize(quantum, rounding=ROUND_DOWN).scaleb(exponent(self.base_currency))
        )


@dataclass(frozen=True, slots=True)
class Invoice:
    id: int
    number: str
    account_id: int
    purpose: str  # topup, order
    amount_minor: int  # in `currency`
    currency: str
    credit_minor: int  # base currency credited when paid
    base_currency: str
    rate: Decimal  # units of `currency` per 1 base unit, fixed at issue
    stars_amount: int | None  # the price in Telegram Stars, fixed at issue
    status: str  # unpaid, paid, cancelled
    method: str | None  # card, stars, balance
    created_at: datetime
    paid_at: datetime | None

    @property
    def payload(self) -> str:
        """The invoice_payload of the Telegram invoice (at most 128 bytes)."""
        return f"inv:{self.id}"


def parse_payload(payload: str) -> int | None:
    """The invoice id of an `inv:<id>` payload, None for anything else."""
    prefix, _, number = payload.partition(":")
    if prefix != "inv" or not ascii_digits(number):
        return None
    return parse_id(number)


@dataclass(frozen=True, slots=True)
class Payment:
    id: int
    invoice_id: int
    account_id: int
    provider: str  # telegram (card), stars
    charge_id: str  # telegram_payment_charge_id
    provider_charge_id: str | None
    amount_minor: int
    currency: str
    credit_minor: int  # base currency credited for it
    created_at: datetime
    refunded_at: datetime | None
    refund_pending: bool = False  # recorded, Telegram has not confirmed it yet


@dataclass(frozen=True, slots=True)
class PaymentResult:
    """What `record_payment` did: `credited` is False for a redelivered payment."""

    credited: bool
    payment: Payment
    invoice: Invoice
    credit_minor: int
    balance_minor: int


class PaymentsApi(Protocol):
    @read_only
    async def get_rates(self) -> Rates:
        """Rates in force (stored, overridden by static configuration)."""

    async def store_rates(self, quotes: list[RateQuote]) -> int:
        """Upsert fetched rates (currencies other than the base one); return how many."""

    async def create_invoice(
        self, account_id: int, amount_minor: int, currency: str, *, purpose: str = "topup"
    ) -> Invoice:
        """Issue an invoice in a supported currency at the current rate (fixed on the invoice).
        ValidationFailed('not_positive' | 'currency')."""

    async def topup_invoice(
        self, account_id: int, amount_minor: int, currency: str
    ) -> tuple[Invoice, bool]:
        """The customer's top-up of `amount_minor` `currency`: (invoice, created). An unpaid
        top-up invoice for the same amount and currency on the same terms (credit and Stars
        price at the current rate) is returned again instead of issuing another one; else a
        new one, unless the account already has the configured number of unpaid top-up
        invoices: LimitReached('open_invoices'). ValidationFailed as create_invoice."""

    @read_only
    async def get_invoice(self, account_id: int, invoice_id: int) -> Invoice:
        """NotFound when it does not exist or is another account's."""

    @read_only
    async def list_invoices(
        self, account_id: int, offset: int = 0, limit: int = 5
    ) -> Page[Invoice]: ...

    async def cancel_invoice(self, account_id: int, invoice_id: int) -> Invoice:
        """InvalidState unless unpaid."""

    @read_only
    async def check_invoice_payable(
        self, account_id: int, invoice_id: int, currency: str, total_amount: int
    ) -> Invoice:
        """Pre-checkout: NotFound, InvalidState('paid' | 'cancelled'),
        ValidationFailed('amount_mismatch'), PaymentBlocked."""

    async def record_payment(
        self,
        account_id: int,
        invoice_id: int,
        *,
        currency: str,
        total_amount: int,
        charge_id: str,
        provider_charge_id: str | None = None,
    ) -> PaymentResult:
        """Credit a successful Telegram payment exactly once per `charge_id` (ledger key
        f"tg:{charge_id}") and mark the invoice paid. A repeat returns credited=False."""

    async def pay_invoice_from_balance(self, account_id: int, invoice_id: int) -> Invoice:
        """Pay a non-top-up invoice by a debit (InsufficientFunds, InvalidState)."""

    @read_only
    async def find_payment(self, charge_id: str) -> Payment | None: ...

    async def begin_refund(self, charge_id: str, *, actor: str) -> Payment:
        """Record a Stars refund before Telegram is asked: the credit is taken back (a debit
        keyed per attempt) and the payment is pending. NotFound, InvalidState('not_stars'),
        AlreadyDone when refunded, InsufficientFunds when already spent. A refund already
        pending is returned unchanged, so asking Telegram again is always safe."""

    async def complete_refund(self, charge_id: str) -> Payment:
        """Telegram refunded the charge: the payment and its invoice are refunded (repeats
        change nothing)."""

    async def cancel_refund(self, charge_id: str) -> Payment:
        """Telegram refused the refund: the pending one is undone and the credit restored."""
