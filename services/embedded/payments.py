"""Invoices, Telegram payments and Stars refunds of the embedded billing.

Exactly-once crediting rests on two unique constraints, not on checks in Python: the
`payments.charge_id` of the Telegram charge and the ledger key f"tg:{charge_id}". A redelivered
`successful_payment` (or a concurrent one) hits them and credits nothing.
"""

from __future__ import annotations

import logging
import uuid
from decimal import ROUND_DOWN, Decimal

from sqlalchemy import func, select, update
from sqlalchemy.exc import IntegrityError

from services.contracts.common import Page
from services.contracts.payments import STARS, Invoice, Payment, PaymentResult, Rates
from services.embedded import models as m
from services.embedded.accounts import LedgerMixin
from services.embedded.profile import ProfileMixin
from services.embedded.rates import RATE_QUANTUM
from services.errors import AlreadyDone, InvalidState, LimitReached, NotFound, ValidationFailed
from services.money import convert

log = logging.getLogger(__name__)


def invoice_dto(row: m.Invoice, base_currency: str) -> Invoice:
    return Invoice(
        id=row.id,
        number=row.number,
        account_id=row.account_id,
        purpose=row.purpose,
        amount_minor=row.amount_minor,
        currency=row.currency,
        credit_minor=row.credit_minor,
        base_currency=base_currency,
        rate=Decimal(row.rate),
        stars_amount=row.stars_amount,
        status=row.status,
        method=row.method,
        created_at=row.created_at,
        paid_at=row.paid_at,
    )


def payment_dto(row: m.Payment, credit_minor: int) -> Payment:
    return Payment(
        id=row.id,
        invoice_id=row.invoice_id,
        account_id=row.account_id,
        provider=row.provider,
        charge_id=row.charge_id,
        provider_charge_id=row.provider_charge_id,
        amount_minor=row.amount_minor,
        currency=row.currency,
        credit_minor=credit_minor,
        created_at=row.created_at,
        refunded_at=row.refunded_at,
        refund_pending=row.refund_requested_at is not None and row.refunded_at is None,
    )


def credit_key(charge_id: str) -> str:
    return f"tg:{charge_id}"


def refund_key(charge_id: str, attempt: int) -> str:
    return f"refund:{charge_id}:{attempt}"


def refund_undo_key(charge_id: str, attempt: int) -> str:
    return f"refund-undo:{charge_id}:{attempt}"


class PaymentsMixin(LedgerMixin, ProfileMixin):  # credits the ledger; rates via profile
    # ---- invoices ------------------------------------------------------------------------
    async def _terms(self, amount_minor: int, currency: str) -> tuple[Rates, int]:
        """The rates in force and the base-currency credit of `amount_minor` at them."""
        if amount_minor <= 0:
            raise ValidationFailed("not_positive")
        rates = await self.get_rates()
        if currency not in rates.currencies or not rates.has(currency):
            raise ValidationFailed("currency", currency=currency)
        credit = convert(amount_minor, currency, self.base_currency, rates.rates, ROUND_DOWN)
        if credit <= 0:
            raise ValidationFailed("amount_too_small")
        return rates, credit

    async def create_invoice(
        self, account_id: int, amount_minor: int, currency: str, *, purpose: str = "topup"
    ) -> Invoice:
        await self._account_row(account_id)
        rates, credit = await self._terms(amount_minor, currency)
        row = m.Invoice(
            number=uuid.uuid4().hex[:32],
            account_id=account_id,
            purpose=purpose,
            amount_minor=amount_minor,
            currency=currency,
            credit_minor=credit,
            rate=rates.rates[currency].quantize(RATE_QUANTUM),
            stars_amount=rates.stars_for(credit),
            status="unpaid",
            created_at=self.now(),
        )
        self.session.add(row)
        await self.session.flush()
        row.number = f"{row.created_at:%Y}-{row.id:06d}"
        await self.session.flush()
        return invoice_dto(row, self.base_currency)

    async def topup_invoice(
        self, account_id: int, amount_minor: int, currency: str
    ) -> tuple[Invoice, bool]:
        await self._account_row(account_id)
        rates, credit = await self._terms(amount_minor, currency)
        await self._lock_account(account_id)  # a double click on two instances: one invoice
        unpaid = (
            await self.session.scalars(
                select(m.Invoice)
                .where(
                    m.Invoice.account_id == account_id,
                    m.Invoice.purpose == "topup",
                    m.Invoice.status == "unpaid",
                )
                .order_by(m.Invoice.id.desc())
                .execution_options(populate_existing=True)
            )
        ).all()
        terms = (amount_minor, currency, credit, rates.stars_for(credit))
        for row in unpaid:
            if (row.amount_minor, row.currency, row.credit_minor, row.stars_amount) == terms:
                return invoice_dto(row, self.base_currency), False
        limit = self.config.max_open_invoices
        if limit and len(unpaid) >= limit:
            raise LimitReached("open_invoices", limit)
        return await self.create_invoice(account_id, amount_minor, currency), True

    async def _invoice_row(self, account_id: int, invoice_id: int) -> m.Invoice:
        row = await self.session.get(m.Invoice, invoice_id, populate_existing=True)
        if row is None or row.account_id != account_id:
            raise NotFound("invoice")
        return row

    async def get_invoice(self, account_id: int, invoice_id: int) -> Invoice:
        return invoice_dto(await self._invoice_row(account_id, invoice_id), self.base_currency)

    async def list_invoices(
        self, account_id: int, offset: int = 0, limit: int = 5
    ) -> Page[Invoice]:
        where = m.Invoice.account_id == account_id
        total = await self.session.scalar(select(func.count()).where(where)) or 0
        rows = await self.session.scalars(
            select(m.Invoice)
            .where(where)
            .order_by(m.Invoice.created_at.desc(), m.Invoice.id.desc())
            .offset(max(0, offset))
            .limit(limit)
        )
        return Page([invoice_dto(r, self.base_currency) for r in rows], total, offset, limit)

    async def cancel_invoice(self, account_id: int, invoice_id: int) -> Invoice:
        await self._invoice_row(account_id, invoice_id)
        await self._switch_status(invoice_id, "cancelled")
        return await self.get_invoice(account_id, invoice_id)

    async def _switch_status(self, invoice_id: int, status: str, method: str | None = None) -> None:
        """unpaid → `status`, atomically (a concurrent second click finds it changed)."""
        values: dict[str, object] = {"status": status}
        if status == "paid":
            values.update(method=method, paid_at=self.now())
        changed = await self.session.scalar(
            update(m.Invoice)
            .where(m.Invoice.id == invoice_id, m.Invoice.status == "unpaid")
            .values(**values)
            .returning(m.Invoice.id)
        )
        if changed is None:
            row = await self.session.get(m.Invoice, invoice_id, populate_existing=True)
            raise InvalidState(row.status if row else "missing")

    @staticmethod
    def _matches(row: m.Invoice, currency: str, total_amount: int) -> bool:
        if currency == STARS:
            return row.stars_amount is not None and total_amount == row.stars_amount
        return currency == row.currency and total_amount == row.amount_minor

    async def check_invoice_payable(
        self, account_id: int, invoice_id: int, currency: str, total_amount: int
    ) -> Invoice:
        row = await self._invoice_row(account_id, invoice_id)
        if row.status != "unpaid":
            raise InvalidState(row.status)
        if not self._matches(row, currency, total_amount):
            raise ValidationFailed("amount_mismatch")
        await self.require_payment_allowed(account_id)
        return invoice_dto(row, self.base_currency)

    # ---- payments ------------------------------------------------------------------------
    async def _credited(self, charge_id: str) -> int:
        amount = await self.session.scalar(
            select(m.LedgerEntry.amount_minor).where(
                m.LedgerEntry.idempotency_key == credit_key(charge_id)
            )
        )
        return int(amount or 0)

    async def _payment_row(self, charge_id: str) -> m.Payment | None:
        return await self.session.scalar(
            select(m.Payment)
            .where(m.Payment.charge_id == charge_id)
            .execution_options(populate_existing=True)
        )

    async def _result(self, payment: m.Payment, credited: bool) -> PaymentResult:
        invoice = await self.session.get(m.Invoice, payment.invoice_id, populate_existing=True)
        account = await self._account_row(payment.account_id)
        assert invoice is not None
        credit = await self._credited(payment.charge_id)
        return PaymentResult(
            credited=credited,
            payment=payment_dto(payment, credit),
            invoice=invoice_dto(invoice, self.base_currency),
            credit_minor=credit,
            balance_minor=account.balance_minor,
        )

    def _credit_for(self, row: m.Invoice, currency: str, total_amount: int) -> int:
        """Base currency to credit: the amount fixed on the invoice when the payment matches
        it; otherwise (never expected after pre-checkout) what was paid, at the invoice's rate."""
        if self._matches(row, currency, total_amount):
            return row.credit_minor
        log.warning(
            "Payment for invoice %s does not match it: %s %s", row.id, total_amount, currency
        )
        if currency == STARS:
            stars_rate = Decimal(row.stars_amount or 0) / Decimal(row.credit_minor)
            return int((Decimal(total_amount) / stars_rate).to_integral_value(ROUND_DOWN))
        if currency == row.currency:
            rates = {row.currency: Decimal(row.rate), self.base_currency: Decimal(1)}
            return convert(total_amount, currency, self.base_currency, rates, ROUND_DOWN)
        raise ValidationFailed("amount_mismatch")

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
        row = await self._invoice_row(account_id, invoice_id)
        existing = await self._payment_row(charge_id)
        if existing is not None:
            return await self._result(existing, credited=False)
        credit = self._credit_for(row, currency, total_amount)
        payment = m.Payment(
            invoice_id=row.id,
            account_id=account_id,
            provider="stars" if currency == STARS else "telegram",
            charge_id=charge_id,
            provider_charge_id=provider_charge_id or None,
            amount_minor=total_amount,
            currency=currency,
            created_at=self.now(),
        )
        try:
            async with self.session.begin_nested():
                self.session.add(payment)
                await self.session.flush()
        except IntegrityError:  # the same charge recorded concurrently: this one is the repeat
            existing = await self._payment_row(charge_id)
            if existing is None:
                raise
            return await self._result(existing, credited=False)
        line = await self.credit(
            account_id,
            credit,
            kind="topup",
            description=row.number,
            reference=f"invoice:{row.id}",
            idempotency_key=credit_key(charge_id),
        )
        if line is None:  # pragma: no cover - the key exists only with its payment row
            return await self._result(payment, credited=False)
        if row.status in ("unpaid", "cancelled"):
            # Money taken for a cancelled invoice (an old Telegram invoice message) still pays it.
            row.status, row.method, row.paid_at = (
                "paid",
                "stars" if currency == STARS else "card",
                self.now(),
            )
            await self.session.flush()
            if row.purpose != "topup" and credit >= row.credit_minor:
                await self.debit(
                    account_id,
                    row.credit_minor,
                    kind=row.purpose,
                    description=row.number,
                    reference=f"invoice:{row.id}",
                    idempotency_key=f"invoice:{row.id}",
                )
        return await self._result(payment, credited=True)

    async def pay_invoice_from_balance(self, account_id: int, invoice_id: int) -> Invoice:
        row = await self._invoice_row(account_id, invoice_id)
        if row.purpose == "topup":
            raise InvalidState("topup")
        await self.require_payment_allowed(account_id)
        await self._switch_status(row.id, "paid", method="balance")
        await self.debit(
            account_id,
            row.credit_minor,
            kind=row.purpose,
            description=row.number,
            reference=f"invoice:{row.id}",
            idempotency_key=f"invoice:{row.id}",
        )
        return await self.get_invoice(account_id, invoice_id)

    async def find_payment(self, charge_id: str) -> Payment | None:
        row = await self._payment_row(charge_id)
        return payment_dto(row, await self._credited(charge_id)) if row else None

    async def begin_refund(self, charge_id: str, *, actor: str) -> Payment:
        row = await self._refundable(charge_id)
        if row.refund_requested_at is not None:
            return await self._payment(row)  # pending: the caller asks Telegram again
        attempt = row.refund_attempt + 1
        credited = await self._credited(charge_id)
        line = await self.debit(
            row.account_id,
            credited,
            kind="refund",
            description=f"{row.amount_minor} {row.currency}",
            reference=f"invoice:{row.invoice_id}",
            idempotency_key=refund_key(charge_id, attempt),
            actor=actor[:64],
        )
        claimed = await self.session.scalar(
            update(m.Payment)
            .where(
                m.Payment.id == row.id,
                m.Payment.refund_attempt == row.refund_attempt,
                m.Payment.refund_requested_at.is_(None),
                m.Payment.refunded_at.is_(None),
            )
            .values(refund_requested_at=self.now(), refund_attempt=attempt)
            .returning(m.Payment.id)
        )
        if line is None or claimed is None:  # a concurrent /refund of the same charge won
            raise AlreadyDone("refund_pending")
        return await self._payment(row)

    async def complete_refund(self, charge_id: str) -> Payment:
        row = await self._payment_row(charge_id)
        if row is None:
            raise NotFound("payment")
        if row.refunded_at is None:
            if row.refund_requested_at is None:
                raise InvalidState("refund_not_requested")
            row.refunded_at = self.now()
            await self.session.execute(
                update(m.Invoice).where(m.Invoice.id == row.invoice_id).values(status="refunded")
            )
            await self.session.flush()
        return await self._payment(row)

    async def cancel_refund(self, charge_id: str) -> Payment:
        row = await self._payment_row(charge_id)
        if row is None:
            raise NotFound("payment")
        if row.refunded_at is not None:
            raise AlreadyDone("refunded")
        if row.refund_requested_at is None:
            return await self._payment(row)
        await self.credit(
            row.account_id,
            await self._credited(charge_id),
            kind="refund_cancelled",
            description=f"{row.amount_minor} {row.currency}",
            reference=f"invoice:{row.invoice_id}",
            idempotency_key=refund_undo_key(charge_id, row.refund_attempt),
        )
        row.refund_requested_at = None
        await self.session.flush()
        return await self._payment(row)

    async def _refundable(self, charge_id: str) -> m.Payment:
        row = await self._payment_row(charge_id)
        if row is None:
            raise NotFound("payment")
        if row.provider != "stars":
            raise InvalidState("not_stars")
        if row.refunded_at is not None:
            raise AlreadyDone("refunded")
        return row

    async def _payment(self, row: m.Payment) -> Payment:
        refreshed = await self._payment_row(row.charge_id)
        assert refreshed is not None
        return payment_dto(refreshed, await self._credited(row.charge_id))
