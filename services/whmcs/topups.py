"""Telegram payments (cards and Stars) and Stars refunds over WHMCS, exactly once.

A payment is recorded in the bot store (adapter_state kind "payment", key the charge id)
BEFORE WHMCS is called ("pending") and marked "done" after; one charge is handled by one call
at a time (a job lease named after it). Then WHMCS is told once:
- route "credit" (a top-up, or money for an invoice that can no longer take it): AddTransaction
  with credit=true and transid = the charge id (api-reference/addtransaction.md). WHMCS refuses
  a transid it has ("Transaction ID must be Unique"): a retry of a pending payment whose first
  call did reach WHMCS ends there, and that counts as credited.
- route "invoice" (an unpaid WHMCS invoice paid with Telegram): AddInvoicePayment with transid
  = the charge id (addinvoicepayment.md). It does NOT refuse a repeated transid, so a retry of
  a pending one first looks the transid up (GetTransactions transid=..., gettransactions.md) and
  pays only when WHMCS has no such transaction.
WHMCS unreachable (or refusing the call for a reason the customer cannot fix, e.g. an unknown
payment method) leaves the payment pending and raises BillingUnavailable: the handler keeps
the update unanswered and the replay job pushes it again later.

Refunds (Stars only): the credit is taken back with AddCredit type=remove keyed per attempt
(ledger.py), recorded before Telegram is asked; cancelling gives it back (keyed too). A
payment that paid a WHMCS invoice is not refunded here (InvalidState("invoice_payment")):
WHMCS's own refund of an invoice payment is an admin-area action.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from decimal import ROUND_DOWN
from typing import Any

from services.contracts.payments import STARS, Payment, PaymentResult
from services.errors import (
    AlreadyDone,
    BillingUnavailable,
    InsufficientFunds,
    InvalidState,
    NotFound,
    ValidationFailed,
)
from services.money import AMOUNT_MINOR_MAX, convert, to_decimal
from services.validation import ID_MAX
from services.whmcs.errors import WhmcsError
from services.whmcs.invoices import WhmcsInvoicesMixin, from_stamp, iso_stamp
from services.whmcs.ledger import state_key

log = logging.getLogger(__name__)

PAYMENT_STATE = "payment"  # adapter_state kind: charge id -> the payment's record
LOCK_TTL = timedelta(seconds=120)
LOCK_ATTEMPTS = 10
LOCK_WAIT_SECONDS = 0.5
CHARGE_ID_LIMIT = 256


def payment_dto(record: dict[str, Any]) -> Payment:
    return Payment(
        id=int(record["id"]),
        invoice_id=int(record["invoice_id"]),
        account_id=int(record["account_id"]),
        provider=str(record["provider"]),
        charge_id=str(record["charge_id"]),
        provider_charge_id=record.get("provider_charge_id"),
        amount_minor=int(record["amount_minor"]),
        currency=str(record["currency"]),
        credit_minor=int(record["credit_minor"]),
        created_at=from_stamp(record.get("created_at")) or datetime.now(UTC),
        refunded_at=from_stamp(record.get("refunded_at")),
        refund_pending=bool(record.get("refund_pending")),
    )


def refund_key(charge_id: str, attempt: int) -> str:
    return f"refund:{charge_id}:{attempt}"


def refund_undo_key(charge_id: str, attempt: int) -> str:
    return f"refund-undo:{charge_id}:{attempt}"


class WhmcsTopupsMixin(WhmcsInvoicesMixin):
    @asynccontextmanager
    async def _charge_lock(self, charge_id: str) -> AsyncIterator[None]:
        """One call at a time per charge (a redelivery racing the first delivery waits)."""
        name = "pay:" + hashlib.sha256(charge_id.encode()).hexdigest()[:40]
        owner = secrets.token_hex(8)
        for _ in range(LOCK_ATTEMPTS):
            if await self.local.acquire_job_lease(name, owner, datetime.now(UTC), LOCK_TTL):
                break
            await asyncio.sleep(LOCK_WAIT_SECONDS)
        else:
            raise BillingUnavailable("busy")
        try:
            yield
        finally:
            await self.local.release_job_lease(name, owner)

    async def _payment_record(self, charge_id: str) -> dict[str, Any] | None:
        return await self.local.get_adapter_state(PAYMENT_STATE, state_key(charge_id))

    async def _save_payment(self, record: dict[str, Any]) -> None:
        await self.local.put_adapter_state(PAYMENT_STATE, state_key(record["charge_id"]), record)

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
        if not charge_id or len(charge_id) > CHARGE_ID_LIMIT:
            raise ValidationFailed("charge_id")
        if not 0 < total_amount <= AMOUNT_MINOR_MAX:
            raise ValidationFailed("amount_mismatch")
        async with self._charge_lock(charge_id):
            record = await self._payment_record(charge_id)
            if record is not None and int(record["account_id"]) != account_id:
                raise NotFound("invoice")
            if record is not None and record["status"] == "done":
                return await self._payment_result(record, credited=False)
            retry = record is not None
            if record is None:
                record = await self._new_payment(
                    account_id, invoice_id, currency, total_amount, charge_id, provider_charge_id
                )
            record = await self._push(record, retry=retry)
            record = record | {"status": "done"}
            await self._save_payment(record)
            await self._mark_topup_paid(record)
            return await self._payment_result(record, credited=True)

    async def _new_payment(
        self,
        account_id: int,
        invoice_id: int,
        currency: str,
        total_amount: int,
        charge_id: str,
        provider_charge_id: str | None,
    ) -> dict[str, Any]:
        """Decide what the payment buys and keep it as pending (before WHMCS is called)."""
        invoice = await self.get_invoice(account_id, invoice_id)
        client = await self._client_of(account_id)
        matches = self._matches(invoice, currency, total_amount)
        if invoice.purpose == "topup" and matches:
            route, credit = "credit", invoice.credit_minor
        elif invoice.status == "unpaid" and matches:
            route, credit = "invoice", invoice.credit_minor
        else:  # never expected after pre-checkout: credit what was paid
            log.warning("Payment %s does not match invoice %s: credited", charge_id, invoice_id)
            route = "credit"
            credit = await self._paid_value(currency, total_amount, client.currency_code)
        payment_id = secrets.randbelow(ID_MAX) + 1
        record = {
            "id": payment_id,
            "status": "pending",
            "route": route,
            "account_id": account_id,
            "client_id": client.id,
            "invoice_id": invoice_id,
            "topup": invoice.purpose == "topup",
            "provider": "stars" if currency == STARS else "telegram",
            "charge_id": charge_id,
            "provider_charge_id": (provider_charge_id or None),
            "amount_minor": total_amount,
            "currency": currency,
            "credit_minor": credit,
            "client_currency": client.currency_code,
            "created_at": iso_stamp(datetime.now(UTC)),
            "refunded_at": None,
            "refund_pending": False,
            "refund_attempt": 0,
        }
        await self._save_payment(record)
        return record

    async def _paid_value(self, currency: str, total_amount: int, client_currency: str) -> int:
        rates = await self.get_rates()
        if currency == STARS:
            base = rates.base_for_stars(total_amount)
            return convert(base, rates.base_currency, client_currency, rates.rates, ROUND_DOWN)
        if not (rates.has(currency) and rates.has(client_currency)):
            raise ValidationFailed("amount_mismatch")
        return convert(total_amount, currency, client_currency, rates.rates, ROUND_DOWN)

    async def _push(self, record: dict[str, Any], *, retry: bool) -> dict[str, Any]:
        """Tell WHMCS about the payment, once; the record as it ends up (the route may turn
        from "invoice" to "credit" when WHMCS refuses the invoice)."""
        try:
            if record["route"] == "invoice":
                return await self._pay_whmcs_invoice(record, retry=retry)
            await self._credit_transaction(record)
            return record
        except WhmcsError as error:
            log.error("WHMCS refused payment %s: %s", record["charge_id"], error.message)
            raise BillingUnavailable("refused") from error
        finally:
            self._client_changed(int(record["client_id"]))

    async def _credit_transaction(self, record: dict[str, Any]) -> None:
        amount = to_decimal(int(record["credit_minor"]), str(record["client_currency"]))
        description = f"Telegram payment {record['amount_minor']} {record['currency']}"
        try:
            await self.client.add_credit_transaction(
                int(record["client_id"]),
                self.options.payment_method,
                str(record["charge_id"]),
                amount,
                description,
            )
        except WhmcsError as error:
            if "unique" not in error.message.lower():
                raise
            # WHMCS has this transid: an earlier attempt did credit it.

    async def _pay_whmcs_invoice(self, record: dict[str, Any], *, retry: bool) -> dict[str, Any]:
        charge_id, invoice_id = str(record["charge_id"]), int(record["invoice_id"])
        currency = str(record["client_currency"])
        if retry:
            done = await self.client.get_transactions(currency, transid=charge_id)
            if any(t.transid == charge_id and t.invoiceid == invoice_id for t in done):
                return record
        amount = to_decimal(int(record["credit_minor"]), currency)
        try:
            await self.client.add_invoice_payment(
                invoice_id, charge_id, self.options.payment_method, datetime.now(UTC), amount
            )
        except WhmcsError as error:
            if "cancelled" not in error.message.lower():
                raise
            # Cancelled meanwhile: the money was taken all the same, so it goes to the credit.
            record = record | {"route": "credit"}
            await self._save_payment(record)
            await self._credit_transaction(record)
        return record

    async def _mark_topup_paid(self, record: dict[str, Any]) -> None:
        if not record.get("topup"):
            return
        topup = await self._topup(int(record["invoice_id"]))
        if topup is None:
            return
        method = "stars" if record["currency"] == STARS else "card"
        paid = {"status": "paid", "method": method, "paid_at": iso_stamp(datetime.now(UTC))}
        await self._save_topup(int(record["invoice_id"]), topup | paid)

    async def _payment_result(self, record: dict[str, Any], *, credited: bool) -> PaymentResult:
        account_id = int(record["account_id"])
        invoice = await self.get_invoice(account_id, int(record["invoice_id"]))
        client = await self._client_details(int(record["client_id"]), fresh=True)
        return PaymentResult(
            credited=credited,
            payment=payment_dto(record),
            invoice=invoice,
            credit_minor=int(record["credit_minor"]),
            balance_minor=client.credit_minor,
        )

    async def find_payment(self, charge_id: str) -> Payment | None:
        if not charge_id or len(charge_id) > CHARGE_ID_LIMIT:
            return None
        record = await self._payment_record(charge_id)
        return None if record is None else payment_dto(record)


class WhmcsRefundsMixin(WhmcsTopupsMixin):
    async def _refundable(self, charge_id: str) -> dict[str, Any]:
        record = await self._payment_record(charge_id) if charge_id else None
        if record is None:
            raise NotFound("payment")
        if record["provider"] != "stars":
            raise InvalidState("not_stars")
        if record.get("refunded_at"):
            raise AlreadyDone("refunded")
        if record["status"] != "done":
            raise InvalidState("payment_pending")  # not in WHMCS yet: nothing to take back
        if record["route"] == "invoice":
            raise InvalidState("invoice_payment")
        return record

    async def _take_back(self, record: dict[str, Any], actor: str | None) -> None:
        await self.debit(
            int(record["account_id"]),
            int(record["credit_minor"]),
            kind="refund",
            description=f"Telegram Stars refund {record['amount_minor']} {record['currency']}",
            idempotency_key=refund_key(record["charge_id"], int(record["refund_attempt"])),
            actor=actor,
        )

    async def begin_refund(self, charge_id: str, *, actor: str) -> Payment:
        async with self._charge_lock(charge_id):
            record = await self._refundable(charge_id)
            if record.get("refund_pending"):
                await self._take_back(record, actor[:64])  # a lost answer: done once by key
                return payment_dto(record)
            attempt = int(record.get("refund_attempt") or 0) + 1
            record = record | {"refund_pending": True, "refund_attempt": attempt}
            await self._save_payment(record)
            try:
                await self._take_back(record, actor[:64])
            except InsufficientFunds:
                await self._save_payment(record | {"refund_pending": False})
                raise
            return payment_dto(record)

    async def complete_refund(self, charge_id: str) -> Payment:
        async with self._charge_lock(charge_id):
            record = await self._payment_record(charge_id)
            if record is None:
                raise NotFound("payment")
            if not record.get("refunded_at"):
                if not record.get("refund_pending"):
                    raise InvalidState("refund_not_requested")
                now = iso_stamp(datetime.now(UTC))
                record = record | {"refunded_at": now, "refund_pending": False}
                await self._save_payment(record)
                topup = await self._topup(int(record["invoice_id"]))
                if topup is not None:
                    await self._save_topup(
                        int(record["invoice_id"]), topup | {"status": "refunded"}
                    )
            return payment_dto(record)

    async def cancel_refund(self, charge_id: str) -> Payment:
        async with self._charge_lock(charge_id):
            record = await self._payment_record(charge_id)
            if record is None:
                raise NotFound("payment")
            if record.get("refunded_at"):
                raise AlreadyDone("refunded")
            if not record.get("refund_pending"):
                return payment_dto(record)
            attempt = int(record["refund_attempt"])
            if await self._key_applied(
                int(record["client_id"]), "refund", refund_key(charge_id, attempt)
            ):
                await self.credit(
                    int(record["account_id"]),
                    int(record["credit_minor"]),
                    kind="refund_cancelled",
                    description=f"Telegram refused the refund of {charge_id[:64]}",
                    idempotency_key=refund_undo_key(charge_id, attempt),
                )
            record = record | {"refund_pending": False}
            await self._save_payment(record)
            return payment_dto(record)
