"""Invoices, payments credited exactly once, paying from the balance and Stars refunds — on
SQLite and PostgreSQL (the `gateway` fixture runs each test on both)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

from services.contracts.payments import parse_payload
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.errors import (
    AlreadyDone,
    InsufficientFunds,
    InvalidState,
    NotFound,
    PaymentBlocked,
    ValidationFailed,
)

PROFILE = {
    "last_name": "Ivanov",
    "first_name": "Ivan",
    "email": "ivan@example.com",
    "city": "Moscow",
    "address": "Tverskaya 1",
}


async def _account(gateway: EmbeddedGateway, telegram_id: int = 42, *, profile: bool = True) -> int:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(telegram_id, telegram_id, name="A")
        if profile:
            await billing.session.execute(
                update(m.Account).where(m.Account.id == account.id).values(**PROFILE)
            )
    return account.id


def _number(invoice_id: int) -> str:
    return f"{datetime.now(UTC):%Y}-{invoice_id:06d}"


async def test_static_rates_are_served_without_any_fetch(gateway: EmbeddedGateway) -> None:
    async with gateway.transaction() as billing:
        rates = await billing.get_rates()
    assert rates.rates == {"EUR": Decimal(1), "USD": Decimal("1.08"), "RUB": Decimal(100)}
    assert (rates.rate_date, rates.sources, rates.available()) == (
        None,
        ("static",),
        ["EUR", "USD", "RUB"],
    )
    assert rates.convert(1000, "EUR", "USD") == 1080
    assert rates.stars_for(1000) == 500 and rates.stars_for(1) == 1


async def test_invoice_fixes_amount_credit_rate_and_stars(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 123456, "RUB")
    assert (invoice.id, invoice.number, invoice.payload) == (1, _number(1), "inv:1")
    assert (invoice.amount_minor, invoice.currency, invoice.credit_minor) == (123456, "RUB", 1234)
    assert (invoice.rate, invoice.stars_amount, invoice.status) == (Decimal(100), 617, "unpaid")
    assert parse_payload("inv:1") == 1
    assert [parse_payload(p) for p in ("inv:", "inv:x", "order:1", "inv:-1")] == [None] * 4
    async with gateway.transaction() as billing:
        usd = await billing.create_invoice(account_id, 1000, "USD")
        assert (usd.credit_minor, usd.stars_amount) == (925, 463)  # 10.00 / 1.08 = 9.259…
        with pytest.raises(ValidationFailed) as info:
            await billing.create_invoice(account_id, 1000, "GBP")
        assert info.value.detail == "currency"
        with pytest.raises(ValidationFailed) as info:
            await billing.create_invoice(account_id, 0, "EUR")
        assert info.value.detail == "not_positive"
        with pytest.raises(ValidationFailed) as info:
            await billing.create_invoice(account_id, 1, "RUB")  # 0.01 ₽ is 0 euro cents
        assert info.value.detail == "amount_too_small"


async def test_invoice_of_another_account_is_not_found(gateway: EmbeddedGateway) -> None:
    owner = await _account(gateway, 1)
    other = await _account(gateway, 2)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(owner, 500, "EUR")
    async with gateway.transaction() as billing:
        for call in (
            billing.get_invoice(other, invoice.id),
            billing.cancel_invoice(other, invoice.id),
            billing.check_invoice_payable(other, invoice.id, "EUR", 500),
            billing.record_payment(
                other, invoice.id, currency="EUR", total_amount=500, charge_id="c1"
            ),
            billing.get_invoice(owner, 999),
        ):
            with pytest.raises(NotFound):
                await call


async def test_pre_checkout_validation(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
        assert (await billing.check_invoice_payable(account_id, invoice.id, "EUR", 1000)).id == 1
        assert (await billing.check_invoice_payable(account_id, invoice.id, "XTR", 500)).id == 1
        for currency, total in (("EUR", 999), ("USD", 1000), ("XTR", 499), ("RUB", 100000)):
            with pytest.raises(ValidationFailed) as info:
                await billing.check_invoice_payable(account_id, invoice.id, currency, total)
            assert info.value.detail == "amount_mismatch"
        await billing.cancel_invoice(account_id, invoice.id)
        with pytest.raises(InvalidState) as state:
            await billing.check_invoice_payable(account_id, invoice.id, "EUR", 1000)
        assert state.value.detail == "cancelled"
        with pytest.raises(InvalidState):
            await billing.cancel_invoice(account_id, invoice.id)
        paid = await billing.create_invoice(account_id, 1000, "EUR")
        await billing.record_payment(
            account_id, paid.id, currency="EUR", total_amount=1000, charge_id="ch-1"
        )
        with pytest.raises(InvalidState) as state:
            await billing.check_invoice_payable(account_id, paid.id, "EUR", 1000)
        assert state.value.detail == "paid"


async def test_payment_gate_lists_missing_fields_and_company_block(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway, profile=False)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
        with pytest.raises(PaymentBlocked) as info:
            await billing.check_invoice_payable(account_id, invoice.id, "EUR", 1000)
        assert info.value.missing == ["last_name", "first_name", "email", "city", "address"]
        await billing.session.execute(
            update(m.Account)
            .where(m.Account.id == account_id)
            .values(**PROFILE, profile_type="company")
        )
        with pytest.raises(PaymentBlocked) as info:
            await billing.check_invoice_payable(account_id, invoice.id, "EUR", 1000)
        assert (info.value.missing, info.value.company_unverified) == ([], True)
        await billing.approve_company(account_id)
        assert (await billing.check_invoice_payable(account_id, invoice.id, "EUR", 1000)).id == 1


async def _payment_counts(gateway: EmbeddedGateway, account_id: int) -> tuple[int, int, int, int]:
    async with gateway.transaction() as billing:
        payments = await billing.session.scalar(select(func.count()).select_from(m.Payment))
        lines = await billing.session.scalar(
            select(func.count()).where(m.LedgerEntry.account_id == account_id)
        )
        balance = (await billing.get_account(account_id)).balance_minor
        return int(payments or 0), int(lines or 0), balance, await billing.ledger_sum(account_id)


async def test_redelivered_payment_credits_once(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 250000, "RUB")
    results = []
    for _ in range(3):
        async with gateway.transaction() as billing:
            results.append(
                await billing.record_payment(
                    account_id,
                    invoice.id,
                    currency="RUB",
                    total_amount=250000,
                    charge_id="tg-charge-1",
                    provider_charge_id="prov-1",
                )
            )
    assert [r.credited for r in results] == [True, False, False]
    assert {(r.credit_minor, r.balance_minor) for r in results} == {(2500, 2500)}
    assert results[0].invoice.status == "paid" and results[0].invoice.method == "card"
    assert results[0].payment.provider == "telegram"
    assert await _payment_counts(gateway, account_id) == (1, 1, 2500, 2500)
    async with gateway.transaction() as billing:
        line = (await billing.list_ledger(account_id)).items[0]
    assert (line.kind, line.amount_minor, line.reference, line.description) == (
        "topup",
        2500,
        "invoice:1",
        _number(1),
    )


async def test_concurrent_deliveries_of_one_payment_credit_once(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")

    async def deliver() -> bool:
        async with gateway.transaction() as billing:
            result = await billing.record_payment(
                account_id, invoice.id, currency="XTR", total_amount=500, charge_id="stars-1"
            )
            await asyncio.sleep(0.05)  # keep the transaction open while the others arrive
            return result.credited

    outcomes = await asyncio.gather(deliver(), deliver(), deliver())
    assert sorted(outcomes) == [False, False, True]
    assert await _payment_counts(gateway, account_id) == (1, 1, 1000, 1000)


async def test_second_charge_for_a_paid_invoice_is_still_credited(
    gateway: EmbeddedGateway,
) -> None:
    """Money taken twice (two invoice messages paid) is never lost: both charges credit."""
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
        await billing.record_payment(
            account_id, invoice.id, currency="EUR", total_amount=1000, charge_id="a"
        )
        again = await billing.record_payment(
            account_id, invoice.id, currency="EUR", total_amount=1000, charge_id="b"
        )
    assert (again.credited, again.balance_minor) == (True, 2000)


async def test_pay_order_invoice_from_balance(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        topup = await billing.create_invoice(account_id, 1000, "EUR")
        order = await billing.create_invoice(account_id, 1500, "EUR", purpose="order")
    async with gateway.transaction() as billing:
        with pytest.raises(InvalidState) as state:
            await billing.pay_invoice_from_balance(account_id, topup.id)
        assert state.value.detail == "topup"
    with pytest.raises(InsufficientFunds) as info:
        async with gateway.transaction() as billing:
            await billing.pay_invoice_from_balance(account_id, order.id)
    assert info.value.missing_minor == 1500
    async with gateway.transaction() as billing:
        assert (await billing.get_invoice(account_id, order.id)).status == "unpaid"
        await billing.credit(account_id, 2000, kind="adjustment", actor="staff")
        paid = await billing.pay_invoice_from_balance(account_id, order.id)
        assert (paid.status, paid.method) == ("paid", "balance")
        with pytest.raises(InvalidState):
            await billing.pay_invoice_from_balance(account_id, order.id)
        assert (await billing.get_account(account_id)).balance_minor == 500


async def test_order_invoice_paid_by_telegram_credits_and_debits(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        order = await billing.create_invoice(account_id, 1500, "EUR", purpose="order")
        result = await billing.record_payment(
            account_id, order.id, currency="EUR", total_amount=1500, charge_id="o-1"
        )
        assert (result.credited, result.balance_minor, result.invoice.status) == (True, 0, "paid")
        kinds = [
            (line.kind, line.amount_minor) for line in (await billing.list_ledger(account_id)).items
        ]
    assert sorted(kinds) == [("order", -1500), ("topup", 1500)]


async def test_stars_refund_reverses_the_credit_once(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 2000, "EUR")
        await billing.record_payment(
            account_id, invoice.id, currency="XTR", total_amount=1000, charge_id="star-9"
        )
        card = await billing.create_invoice(account_id, 500, "EUR")
        await billing.record_payment(
            account_id, card.id, currency="EUR", total_amount=500, charge_id="card-9"
        )
    async with gateway.transaction() as billing:
        pending = await billing.begin_refund("star-9", actor="staff:7")
        assert (pending.provider, pending.amount_minor, pending.credit_minor) == (
            "stars",
            1000,
            2000,
        )
        assert (pending.refund_pending, pending.refunded_at) == (True, None)
        # the money is held from the moment the refund is recorded
        assert (await billing.get_account(account_id)).balance_minor == 500
        again = await billing.begin_refund("star-9", actor="staff:7")  # asking again is safe
        assert again.refund_pending is True
    async with gateway.transaction() as billing:
        payment = await billing.complete_refund("star-9")
        assert (payment.refund_pending, payment.refunded_at is not None) == (False, True)
        assert (await billing.complete_refund("star-9")).refunded_at == payment.refunded_at
        assert (await billing.get_invoice(account_id, invoice.id)).status == "refunded"
        assert (await billing.get_account(account_id)).balance_minor == 500
        line = (await billing.list_ledger(account_id)).items[0]
        assert (line.kind, line.amount_minor, line.actor) == ("refund", -2000, "staff:7")
        assert await billing.ledger_sum(account_id) == 500
    async with gateway.transaction() as billing:
        with pytest.raises(AlreadyDone):
            await billing.begin_refund("star-9", actor="staff:7")
        with pytest.raises(AlreadyDone):
            await billing.cancel_refund("star-9")
        with pytest.raises(InvalidState) as state:
            await billing.begin_refund("card-9", actor="staff:7")
        assert state.value.detail == "not_stars"
        with pytest.raises(NotFound):
            await billing.begin_refund("nope", actor="staff:7")
        assert await billing.find_payment("nope") is None
        found = await billing.find_payment("card-9")
        assert found is not None and (found.credit_minor, found.refunded_at) == (500, None)


async def test_a_refused_refund_gives_the_money_back_and_can_be_tried_again(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
        await billing.record_payment(
            account_id, invoice.id, currency="XTR", total_amount=500, charge_id="s-2"
        )
    for _attempt in range(2):  # refused twice: each attempt has its own ledger keys
        async with gateway.transaction() as billing:
            await billing.begin_refund("s-2", actor="staff")
            assert (await billing.get_account(account_id)).balance_minor == 0
        async with gateway.transaction() as billing:
            payment = await billing.cancel_refund("s-2")
            assert (payment.refund_pending, payment.refunded_at) == (False, None)
            assert (await billing.get_invoice(account_id, invoice.id)).status == "paid"
            assert (await billing.get_account(account_id)).balance_minor == 1000
    async with gateway.transaction() as billing:
        await billing.begin_refund("s-2", actor="staff")
        await billing.complete_refund("s-2")
        kinds = [(x.kind, x.amount_minor) for x in (await billing.list_ledger(account_id)).items]
        assert kinds == [
            ("refund", -1000),
            ("refund_cancelled", 1000),
            ("refund", -1000),
            ("refund_cancelled", 1000),
            ("refund", -1000),
            ("topup", 1000),
        ]
        assert await billing.ledger_sum(account_id) == 0
        assert (await billing.get_account(account_id)).balance_minor == 0


async def test_refund_of_spent_stars_is_refused(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    async with gateway.transaction() as billing:
        invoice = await billing.create_invoice(account_id, 1000, "EUR")
        await billing.record_payment(
            account_id, invoice.id, currency="XTR", total_amount=500, charge_id="s-1"
        )
        await billing.debit(account_id, 600, kind="order")
    with pytest.raises(InsufficientFunds):
        async with gateway.transaction() as billing:
            await billing.begin_refund("s-1", actor="staff")
    async with gateway.transaction() as billing:
        payment = await billing.find_payment("s-1")
        assert payment is not None and (payment.refunded_at, payment.refund_pending) == (
            None,
            False,
        )
        assert (await billing.get_account(account_id)).balance_minor == 400


async def test_invoices_are_paged_newest_first(gateway: EmbeddedGateway) -> None:
    account_id = await _account(gateway)
    other = await _account(gateway, 77)
    async with gateway.transaction() as billing:
        for amount in range(100, 800, 100):
            await billing.create_invoice(account_id, amount, "EUR")
        await billing.create_invoice(other, 100, "EUR")
    async with gateway.transaction() as billing:
        first = await billing.list_invoices(account_id, 0, 5)
        second = await billing.list_invoices(account_id, 5, 5)
    assert (first.total, first.page_count, first.has_next) == (7, 2, True)
    assert [i.amount_minor for i in first.items] == [700, 600, 500, 400, 300]
    assert [i.amount_minor for i in second.items] == [200, 100]
    assert (second.has_next, second.has_prev) == (False, True)
