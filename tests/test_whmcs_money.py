"""Money over WHMCS: balance and credit log, WHMCS invoices (ownership, paid from credit,
cancelled), Telegram top-ups and invoice payments credited exactly once whatever is repeated
or lost, and Stars refunds — against the WHMCS stand-in, the bot's records on SQLite and
PostgreSQL."""

from __future__ import annotations

import asyncio
from decimal import Decimal

import pytest

from services.billing import Billing, per_call
from services.contracts.common import Account
from services.errors import (
    AlreadyDone,
    BillingUnavailable,
    InsufficientFunds,
    InvalidState,
    LimitReached,
    NotFound,
    ValidationFailed,
)
from services.whmcs.gateway import WhmcsGateway
from tests.harness.whmcs import Client, Fault, InvoiceLine, WhmcsStandIn
from tests.whmcs_fixtures import linked_account

# Static rates of the test settings: 1 EUR = 1.08 USD, 50 Stars per EUR.
TOPUP_STARS = 463  # 10.00 USD = 9.26 EUR (rounded up) -> 463 Stars
INVOICE_STARS = 232  # 5.00 USD = 4.63 EUR -> 232 Stars


async def customer(
    gateway: WhmcsGateway, whmcs: WhmcsStandIn, credit: str = "0"
) -> tuple[Billing, Account, Client]:
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal(credit))
    account = await linked_account(gateway, 501, alice)
    return per_call(gateway), account, alice


def credited(whmcs: WhmcsStandIn, transid: str) -> list[str]:
    """The transids of credit transactions WHMCS holds for `transid`."""
    return [t.transid for t in whmcs.transactions if t.transid == transid and t.credit]


def calls_with(whmcs: WhmcsStandIn, action: str, transid: str) -> int:
    return sum(1 for call in whmcs.called(action) if call.params.get("transid") == transid)


# ---- balance and ledger ----------------------------------------------------------------------
async def test_balance_is_the_clients_credit_and_the_ledger_its_credit_log(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    for _ in range(2):
        await billing.credit(
            account.id, 2500, kind="adjustment", idempotency_key="staff:1", actor="tg:9001"
        )
    assert len(whmcs.called("AddCredit")) == 1
    assert alice.credit == Decimal("25.00")
    await billing.debit(account.id, 500, kind="adjustment", idempotency_key="staff:2")
    assert (await billing.get_account(account.id)).balance_minor == 2000
    page = await billing.list_ledger(account.id)
    assert [(line.amount_minor, line.balance_after_minor, line.kind) for line in page.items] == [
        (-500, 2000, "adjustment"),
        (2500, 2500, "adjustment"),
    ]
    assert page.total == 2
    assert await billing.ledger_sum(account.id) == 2000
    with pytest.raises(InsufficientFunds) as short:
        await billing.debit(account.id, 2100, kind="adjustment")
    assert (short.value.missing_minor, short.value.currency) == (100, "USD")
    with pytest.raises(ValidationFailed):
        await billing.credit(account.id, 0, kind="adjustment")


async def test_a_credit_whose_answer_was_lost_is_not_added_again(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    whmcs.fail_next(Fault.RESET, "AddCredit", performed=True)
    with pytest.raises(BillingUnavailable):
        await billing.credit(account.id, 1000, kind="adjustment", idempotency_key="staff:3")
    assert (
        await billing.credit(account.id, 1000, kind="adjustment", idempotency_key="staff:3") is None
    )  # the marker is in the credit log: done
    assert alice.credit == Decimal("10.00")
    whmcs.fail_next(Fault.RESET, "AddCredit")  # lost before WHMCS acted
    with pytest.raises(BillingUnavailable):
        await billing.credit(account.id, 500, kind="adjustment", idempotency_key="staff:4")
    assert await billing.credit(account.id, 500, kind="adjustment", idempotency_key="staff:4")
    assert alice.credit == Decimal("15.00")


# ---- WHMCS invoices --------------------------------------------------------------------------
async def test_invoices_are_the_clients_own(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    bob = whmcs.add_client("Bob", "Jones", "bob@example.com")
    first = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("5.00")))
    second = whmcs.add_invoice(alice, InvoiceLine("VPS", Decimal("20.00")))
    theirs = whmcs.add_invoice(bob, InvoiceLine("Hosting", Decimal("7.00")))
    page = await billing.list_invoices(account.id)
    assert [(i.id, i.amount_minor, i.status) for i in page.items] == [
        (second.id, 2000, "unpaid"),
        (first.id, 500, "unpaid"),
    ]
    assert page.total == 2
    invoice = await billing.get_invoice(account.id, first.id)
    assert (invoice.currency, invoice.credit_minor, invoice.purpose) == ("USD", 500, "order")
    assert invoice.stars_amount == INVOICE_STARS
    for other in (theirs.id, 99999, 2**31 - 1):
        with pytest.raises(NotFound):
            await billing.get_invoice(account.id, other)
    whmcs.fail_next(Fault.AUTH, "GetInvoice")  # refused is not "not found"
    with pytest.raises(BillingUnavailable):
        await billing.get_invoice(account.id, first.id)
    with pytest.raises(NotFound):
        await billing.cancel_invoice(account.id, theirs.id)
    with pytest.raises(NotFound):
        await billing.pay_invoice_from_balance(account.id, theirs.id)
    assert theirs.status == "Unpaid"


async def test_an_invoice_is_paid_from_credit_when_it_covers_it(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs, credit="12.50")
    small = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("5.00")))
    large = whmcs.add_invoice(alice, InvoiceLine("VPS", Decimal("20.00")))
    paid = await billing.pay_invoice_from_balance(account.id, small.id)
    assert (paid.status, small.status, alice.credit) == ("paid", "Paid", Decimal("7.50"))
    with pytest.raises(InvalidState):
        await billing.pay_invoice_from_balance(account.id, small.id)
    with pytest.raises(InsufficientFunds) as short:
        await billing.pay_invoice_from_balance(account.id, large.id)
    assert (short.value.missing_minor, short.value.currency) == (1250, "USD")
    assert (large.status, alice.credit) == ("Unpaid", Decimal("7.50"))
    assert len(whmcs.called("ApplyCredit")) == 1


async def test_only_an_unpaid_invoice_is_cancelled(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("5.00")))
    cancelled = await billing.cancel_invoice(account.id, invoice.id)
    assert (cancelled.status, invoice.status) == ("cancelled", "Cancelled")
    with pytest.raises(InvalidState):
        await billing.cancel_invoice(account.id, invoice.id)


# ---- top-ups with Telegram -------------------------------------------------------------------
async def test_a_topup_is_credited_once_however_often_it_is_recorded(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice, created = await billing.topup_invoice(account.id, 1000, "USD")
    assert created and (invoice.credit_minor, invoice.stars_amount) == (1000, TOPUP_STARS)
    again, created = await billing.topup_invoice(account.id, 1000, "USD")
    assert (again.id, created) == (invoice.id, False)
    assert not whmcs.called("AddInvoice") and not whmcs.invoices  # no WHMCS invoice needed
    with pytest.raises(ValidationFailed):
        await billing.check_invoice_payable(account.id, invoice.id, "XTR", TOPUP_STARS - 1)
    await billing.check_invoice_payable(account.id, invoice.id, "XTR", TOPUP_STARS)
    results = [
        await billing.record_payment(
            account.id, invoice.id, currency="XTR", total_amount=TOPUP_STARS, charge_id="st-1"
        )
        for _ in range(3)
    ]
    assert [r.credited for r in results] == [True, False, False]
    assert {(r.credit_minor, r.balance_minor) for r in results} == {(1000, 1000)}
    assert calls_with(whmcs, "AddTransaction", "st-1") == 1
    assert credited(whmcs, "st-1") == ["st-1"]
    assert alice.credit == Decimal("10.00")
    assert whmcs.called("AddTransaction")[0].params["paymentmethod"] == "telegram"
    with pytest.raises(InvalidState):
        await billing.check_invoice_payable(account.id, invoice.id, "XTR", TOPUP_STARS)
    assert (await billing.get_invoice(account.id, invoice.id)).status == "paid"
    found = await billing.find_payment("st-1")
    assert found is not None and (found.provider, found.credit_minor) == ("stars", 1000)


async def test_someone_elses_topup_is_not_found(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, _ = await customer(whmcs_gateway, whmcs)
    bob = await linked_account(whmcs_gateway, 502, whmcs.add_client("Bob", "J", "b@example.com"))
    invoice, _ = await billing.topup_invoice(account.id, 1000, "USD")
    with pytest.raises(NotFound):
        await billing.get_invoice(bob.id, invoice.id)
    with pytest.raises(NotFound):
        await billing.check_invoice_payable(bob.id, invoice.id, "XTR", TOPUP_STARS)
    for amount in range(5):
        await billing.topup_invoice(bob.id, 1000 + amount, "USD")
    with pytest.raises(LimitReached):
        await billing.topup_invoice(bob.id, 2000, "USD")


async def test_whmcs_down_during_a_topup_then_back_credits_once(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice, _ = await billing.topup_invoice(account.id, 1000, "USD")
    await whmcs.go_down()
    with pytest.raises(BillingUnavailable):
        await billing.record_payment(
            account.id, invoice.id, currency="XTR", total_amount=TOPUP_STARS, charge_id="st-2"
        )
    assert (alice.credit, whmcs.transactions) == (Decimal(0), [])
    await whmcs.come_back()
    result = await billing.record_payment(
        account.id, invoice.id, currency="XTR", total_amount=TOPUP_STARS, charge_id="st-2"
    )
    assert (result.credited, result.balance_minor) == (True, 1000)
    assert credited(whmcs, "st-2") == ["st-2"] and alice.credit == Decimal("10.00")


async def test_whmcs_slow_or_losing_the_answer_during_a_topup_credits_once(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice, _ = await billing.topup_invoice(account.id, 1000, "USD")

    async def record(charge_id: str) -> bool:
        result = await billing.record_payment(
            account.id, invoice.id, currency="XTR", total_amount=TOPUP_STARS, charge_id=charge_id
        )
        return result.credited

    whmcs.slow(2.5, "AddTransaction")  # longer than the client waits (2 s)
    with pytest.raises(BillingUnavailable):
        await record("st-3")
    whmcs.slow(0, "AddTransaction")
    assert await record("st-3") is True
    await asyncio.sleep(0.8)  # the slow first call ends on WHMCS's side meanwhile
    assert credited(whmcs, "st-3") == ["st-3"] and alice.credit == Decimal("10.00")

    second, _ = await billing.topup_invoice(account.id, 1000, "USD")
    invoice = second
    whmcs.fail_next(Fault.RESET, "AddTransaction", performed=True)  # done, answer lost
    with pytest.raises(BillingUnavailable):
        await record("st-4")
    assert await record("st-4") is True  # "Transaction ID must be Unique": already credited
    assert await record("st-4") is False
    assert credited(whmcs, "st-4") == ["st-4"] and alice.credit == Decimal("20.00")


# ---- a WHMCS invoice paid with Telegram ------------------------------------------------------
async def test_an_invoice_paid_with_telegram_is_paid_once_across_a_retry(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("5.00")))
    await billing.check_invoice_payable(account.id, invoice.id, "XTR", INVOICE_STARS)
    whmcs.fail_next(Fault.RESET, "AddInvoicePayment", performed=True)
    with pytest.raises(BillingUnavailable):
        await billing.record_payment(
            account.id, invoice.id, currency="XTR", total_amount=INVOICE_STARS, charge_id="st-5"
        )
    assert invoice.status == "Paid"  # WHMCS did it; the answer was lost
    for expected in (True, False):
        result = await billing.record_payment(
            account.id, invoice.id, currency="XTR", total_amount=INVOICE_STARS, charge_id="st-5"
        )
        assert (result.credited, result.invoice.status) == (expected, "paid")
    assert calls_with(whmcs, "AddInvoicePayment", "st-5") == 1
    assert calls_with(whmcs, "GetTransactions", "st-5") == 1
    assert (invoice.paid, alice.credit) == (Decimal("5.00"), Decimal(0))

    other = whmcs.add_invoice(alice, InvoiceLine("VPS", Decimal("5.00")))
    whmcs.fail_next(Fault.RESET, "AddInvoicePayment")  # lost before WHMCS acted
    with pytest.raises(BillingUnavailable):
        await billing.record_payment(
            account.id, other.id, currency="USD", total_amount=500, charge_id="card-6"
        )
    result = await billing.record_payment(
        account.id, other.id, currency="USD", total_amount=500, charge_id="card-6"
    )
    assert result.credited and other.status == "Paid"
    assert [t.invoiceid for t in whmcs.transactions if t.transid == "card-6"] == [other.id]


async def test_money_for_an_invoice_cancelled_meanwhile_goes_to_the_credit(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("5.00")))
    await billing.check_invoice_payable(account.id, invoice.id, "USD", 500)
    invoice.status = "Cancelled"  # in WHMCS's admin area, after the pre-checkout
    result = await billing.record_payment(
        account.id, invoice.id, currency="USD", total_amount=500, charge_id="card-7"
    )
    assert (result.credited, result.balance_minor) == (True, 500)
    assert credited(whmcs, "card-7") == ["card-7"]


# ---- refunds ---------------------------------------------------------------------------------
async def test_a_stars_topup_is_refunded_once(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice, _ = await billing.topup_invoice(account.id, 1000, "USD")
    await billing.record_payment(
        account.id, invoice.id, currency="XTR", total_amount=TOPUP_STARS, charge_id="st-8"
    )
    pending = await billing.begin_refund("st-8", actor="tg:9001")
    assert pending.refund_pending and alice.credit == Decimal(0)
    assert (await billing.begin_refund("st-8", actor="tg:9001")).refund_pending
    assert alice.credit == Decimal(0)  # asked again: nothing taken twice
    await billing.cancel_refund("st-8")  # Telegram refused
    assert alice.credit == Decimal("10.00")
    await billing.begin_refund("st-8", actor="tg:9001")
    done = await billing.complete_refund("st-8")
    assert done.refunded_at is not None and not done.refund_pending
    assert await billing.complete_refund("st-8") == done
    with pytest.raises(AlreadyDone):
        await billing.begin_refund("st-8", actor="tg:9001")
    assert alice.credit == Decimal(0)
    assert (await billing.get_invoice(account.id, invoice.id)).status == "refunded"
    with pytest.raises(NotFound):
        await billing.begin_refund("no-such-charge", actor="tg:9001")


async def test_a_refund_is_refused_before_telegram_is_asked(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, account, alice = await customer(whmcs_gateway, whmcs)
    invoice, _ = await billing.topup_invoice(account.id, 1000, "USD")
    await billing.record_payment(
        account.id, invoice.id, currency="XTR", total_amount=TOPUP_STARS, charge_id="st-9"
    )
    alice.credit = Decimal("4.00")  # spent meanwhile
    with pytest.raises(InsufficientFunds) as short:
        await billing.begin_refund("st-9", actor="tg:9001")
    assert short.value.missing_minor == 600
    assert not (await billing.find_payment("st-9")).refund_pending  # type: ignore[union-attr]
    card, _ = await billing.topup_invoice(account.id, 2000, "USD")
    await billing.record_payment(
        account.id, card.id, currency="USD", total_amount=2000, charge_id="card-10"
    )
    with pytest.raises(InvalidState):
        await billing.begin_refund("card-10", actor="tg:9001")
    paid_invoice = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("5.00")))
    await billing.record_payment(
        account.id,
        paid_invoice.id,
        currency="XTR",
        total_amount=INVOICE_STARS,
        charge_id="st-11",
    )
    with pytest.raises(InvalidState) as invoice_payment:
        await billing.begin_refund("st-11", actor="tg:9001")
    assert invoice_payment.value.detail == "invoice_payment"
