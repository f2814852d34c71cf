"""Rates, WHMCS invoices and the bot's own top-up intents.

Exchange rates are the bot's (`self.local`). Invoices are two kinds behind one id space:
- WHMCS invoices of the linked client (GetInvoices / GetInvoice; a `userid` that is not the
  client is NotFound, a Draft is never shown — clients do not see drafts in WHMCS either),
  paid from credit (ApplyCredit) or cancelled (UpdateInvoice status=Cancelled);
- top-up intents: a Telegram payment that goes to the credit needs no WHMCS invoice, so the
  bot keeps its own record (adapter_state kind "topup", key = the id) with the amount, the
  currency, the credit it buys and the Stars price, fixed at issue. Their ids are random in
  [2**30, 2**31): far above WHMCS's sequential invoice ids, and looked up first.
"""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime
from decimal import ROUND_DOWN, ROUND_UP, Decimal
from typing import Any

from services.contracts.common import Page
from services.contracts.payments import STARS, Invoice, RateQuote, Rates
from services.errors import (
    InsufficientFunds,
    InvalidState,
    LimitReached,
    NotFound,
    ValidationFailed,
)
from services.money import AMOUNT_MINOR_MAX, convert, to_decimal
from services.validation import ID_MAX
from services.whmcs import models as wm
from services.whmcs.errors import WhmcsAuthError, WhmcsError
from services.whmcs.ledger import WhmcsLedgerCore

TOPUP_STATE = "topup"  # adapter_state kind: top-up id -> its record
TOPUP_INDEX = "topups"  # adapter_state kind: account id -> {"ids": [its recent top-ups]}
TOPUP_ID_MIN = 2**30
INDEX_LENGTH = 20
STATUSES = {"Unpaid": "unpaid", "Paid": "paid", "Cancelled": "cancelled", "Refunded": "refunded"}


def iso_stamp(moment: datetime | None) -> str | None:
    return None if moment is None else moment.isoformat()


def from_stamp(text: object) -> datetime | None:
    return datetime.fromisoformat(text) if isinstance(text, str) else None


def topup_dto(topup_id: int, record: dict[str, Any]) -> Invoice:
    created = from_stamp(record.get("created_at")) or datetime.now(UTC)
    return Invoice(
        id=topup_id,
        number=f"TG-{topup_id}",
        account_id=int(record["account_id"]),
        purpose="topup",
        amount_minor=int(record["amount_minor"]),
        currency=str(record["currency"]),
        credit_minor=int(record["credit_minor"]),
        base_currency=str(record["client_currency"]),
        rate=Decimal(str(record["rate"])),
        stars_amount=int(record["stars_amount"]),
        status=str(record["status"]),
        method=record.get("method"),
        created_at=created,
        paid_at=from_stamp(record.get("paid_at")),
    )


def stars_price(rates: Rates, minor: int, currency: str) -> int | None:
    """Telegram Stars for `minor` of `currency` at the rates in force (None: no rate)."""
    if not rates.has(currency) or minor <= 0:
        return None
    base = convert(minor, currency, rates.base_currency, rates.rates, ROUND_UP)
    return rates.stars_for(base)


def whmcs_dto(row: wm.Invoice, account_id: int, rates: Rates) -> Invoice:
    status = STATUSES.get(row.status, row.status.lower())
    due = row.balance_minor if status == "unpaid" else row.total_minor
    created = datetime.combine(row.invoice_date or datetime.min.date(), datetime.min.time())
    return Invoice(
        id=row.id,
        number=str(row.id),
        account_id=account_id,
        purpose="order",
        amount_minor=due,
        currency=row.currency,
        credit_minor=due,
        base_currency=row.currency,
        rate=Decimal(1),
        stars_amount=stars_price(rates, due, row.currency) if status == "unpaid" else None,
        status=status,
        method=None,
        created_at=created.replace(tzinfo=UTC),
        paid_at=row.datepaid.replace(tzinfo=UTC) if row.datepaid else None,
    )


class WhmcsInvoicesMixin(WhmcsLedgerCore):
    # ---- rates: the bot's own ---------------------------------------------------------------
    async def get_rates(self) -> Rates:
        return await self.local.get_rates()

    async def store_rates(self, quotes: list[RateQuote]) -> int:
        return await self.local.store_rates(quotes)

    # ---- top-up intents -----------------------------------------------------------------------
    async def _topup_terms(
        self, amount_minor: int, currency: str, client_currency: str
    ) -> dict[str, Any]:
        """What a top-up of `amount_minor` `currency` buys at the rates in force."""
        if amount_minor <= 0:
            raise ValidationFailed("not_positive")
        if amount_minor > AMOUNT_MINOR_MAX:
            raise ValidationFailed("too_large")
        rates = await self.get_rates()
        if currency not in rates.currencies or not rates.has(currency):
            raise ValidationFailed("currency", currency=currency)
        if not rates.has(client_currency):
            raise ValidationFailed("currency", currency=client_currency)
        credit = convert(amount_minor, currency, client_currency, rates.rates, ROUND_DOWN)
        stars = stars_price(rates, credit, client_currency)
        if credit <= 0 or stars is None:
            raise ValidationFailed("amount_too_small")
        rate = rates.rates[currency] / rates.rates[client_currency]
        return {
            "amount_minor": amount_minor,
            "currency": currency,
            "credit_minor": credit,
            "client_currency": client_currency,
            "rate": str(rate.quantize(Decimal("0.00000001"))),
            "stars_amount": stars,
        }

    async def _topup(self, topup_id: int) -> dict[str, Any] | None:
        if not TOPUP_ID_MIN <= topup_id <= ID_MAX:
            return None
        return await self.local.get_adapter_state(TOPUP_STATE, str(topup_id))

    async def _new_topup_id(self) -> int:
        for _ in range(8):
            candidate = TOPUP_ID_MIN + secrets.randbelow(ID_MAX - TOPUP_ID_MIN + 1)
            if await self.local.get_adapter_state(TOPUP_STATE, str(candidate)) is None:
                return candidate
        raise RuntimeError("no free top-up id")  # pragma: no cover - 2**30 ids to pick from

    async def _topup_ids(self, account_id: int) -> list[int]:
        index = await self.local.get_adapter_state(TOPUP_INDEX, str(account_id))
        return [int(i) for i in (index or {}).get("ids", [])]

    async def _save_topup(self, topup_id: int, record: dict[str, Any]) -> None:
        await self.local.put_adapter_state(TOPUP_STATE, str(topup_id), record)

    async def create_invoice(
        self, account_id: int, amount_minor: int, currency: str, *, purpose: str = "topup"
    ) -> Invoice:
        # WHMCS makes its own invoices (orders, renewals); the bot only issues top-ups.
        if purpose != "topup":
            raise ValidationFailed("purpose")
        client = await self._client_of(account_id)
        terms = await self._topup_terms(amount_minor, currency, client.currency_code)
        topup_id = await self._new_topup_id()
        record = terms | {
            "account_id": account_id,
            "client_id": client.id,
            "status": "unpaid",
            "method": None,
            "created_at": iso_stamp(datetime.now(UTC)),
            "paid_at": None,
        }
        await self._save_topup(topup_id, record)
        ids = [topup_id, *await self._topup_ids(account_id)][:INDEX_LENGTH]
        await self.local.put_adapter_state(TOPUP_INDEX, str(account_id), {"ids": ids})
        return topup_dto(topup_id, record)

    async def topup_invoice(
        self, account_id: int, amount_minor: int, currency: str
    ) -> tuple[Invoice, bool]:
        client = await self._client_of(account_id)
        terms = await self._topup_terms(amount_minor, currency, client.currency_code)
        unpaid = 0
        for topup_id in await self._topup_ids(account_id):
            record = await self._topup(topup_id)
            if record is None or record.get("status") != "unpaid":
                continue
            unpaid += 1
            if all(record.get(name) == value for name, value in terms.items()):
                return topup_dto(topup_id, record), False
        limit = self.options.max_open_invoices
        if limit and unpaid >= limit:
            raise LimitReached("open_invoices", limit)
        return await self.create_invoice(account_id, amount_minor, currency), True

    # ---- WHMCS invoices -----------------------------------------------------------------------
    async def _whmcs_invoice(self, account_id: int, invoice_id: int) -> wm.Invoice:
        """The client's own invoice; NotFound for another client's, a draft or none."""
        client = await self._client_of(account_id)
        if not 1 <= invoice_id <= ID_MAX:
            raise NotFound("invoice")
        try:
            row = await self.client.get_invoice(invoice_id, client.currency_code)
        except WhmcsAuthError:  # WHMCS refused the bot: BillingUnavailable
            raise
        except WhmcsError as error:
            raise NotFound("invoice") from error
        if row.userid != client.id or row.status == "Draft":
            raise NotFound("invoice")
        return row

    async def get_invoice(self, account_id: int, invoice_id: int) -> Invoice:
        record = await self._topup(invoice_id)
        if record is not None:
            if int(record["account_id"]) != account_id:
                raise NotFound("invoice")
            return topup_dto(invoice_id, record)
        row = await self._whmcs_invoice(account_id, invoice_id)
        return whmcs_dto(row, account_id, await self.get_rates())

    async def list_invoices(
        self, account_id: int, offset: int = 0, limit: int = 5
    ) -> Page[Invoice]:
        """The client's WHMCS invoices, newest first. Top-up intents are not listed: a paid
        one is a credit line of the history, an unpaid one lives in the top-up screen."""
        offset, limit = max(0, min(offset, ID_MAX)), max(1, min(limit, 100))
        client = await self._client_of(account_id)
        rows, total = await self.client.invoices_page(
            client.id, client.currency_code, offset, limit
        )
        rates = await self.get_rates()
        items = [
            whmcs_dto(row, account_id, rates)
            for row in rows
            if row.userid == client.id and row.status != "Draft"
        ]
        return Page(items, max(0, min(total, ID_MAX)), offset, limit)

    async def cancel_invoice(self, account_id: int, invoice_id: int) -> Invoice:
        invoice = await self.get_invoice(account_id, invoice_id)
        if invoice.status != "unpaid":
            raise InvalidState(invoice.status)
        if invoice.purpose == "topup":
            record = await self._topup(invoice_id)
            assert record is not None
            await self._save_topup(invoice_id, record | {"status": "cancelled"})
            return replace(invoice, status="cancelled")
        try:
            await self.client.update_invoice_status(invoice_id, "Cancelled")
        except WhmcsAuthError:  # WHMCS refused the bot: BillingUnavailable
            raise
        except WhmcsError as error:
            raise InvalidState("refused") from error
        return await self.get_invoice(account_id, invoice_id)

    async def pay_invoice_from_balance(self, account_id: int, invoice_id: int) -> Invoice:
        invoice = await self.get_invoice(account_id, invoice_id)
        if invoice.purpose == "topup":
            raise InvalidState("topup")
        if invoice.status != "unpaid":
            raise InvalidState(invoice.status)
        client = await self._client_of(account_id, fresh=True)
        if client.credit_minor < invoice.credit_minor:
            raise InsufficientFunds(invoice.credit_minor - client.credit_minor, invoice.currency)
        amount = to_decimal(invoice.credit_minor, invoice.currency)
        try:
            await self.client.apply_credit(invoice_id, invoice.currency, amount)
        except WhmcsAuthError:  # WHMCS refused the bot: BillingUnavailable
            raise
        except WhmcsError as error:
            # Between our read and ApplyCredit the credit was used or the invoice paid.
            if "credit balance" in error.message.lower():
                raise InsufficientFunds(invoice.credit_minor, invoice.currency) from error
            raise InvalidState("paid") from error
        finally:
            self._client_changed(client.id)
        return await self.get_invoice(account_id, invoice_id)

    @staticmethod
    def _matches(invoice: Invoice, currency: str, total_amount: int) -> bool:
        if currency == STARS:
            return invoice.stars_amount is not None and total_amount == invoice.stars_amount
        return currency == invoice.currency and total_amount == invoice.amount_minor

    async def check_invoice_payable(
        self, account_id: int, invoice_id: int, currency: str, total_amount: int
    ) -> Invoice:
        """PaymentBlocked is left to the profile gate the handlers run before issuing (the
        WHMCS profile mixin owns require_payment_allowed)."""
        invoice = await self.get_invoice(account_id, invoice_id)
        if invoice.status != "unpaid":
            raise InvalidState(invoice.status)
        if not self._matches(invoice, currency, total_amount):
            raise ValidationFailed("amount_mismatch")
        return invoice
