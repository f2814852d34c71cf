"""`renew_due_orders` over WHMCS (the stand-in): one by one through renew_order, with the same
outcomes as the embedded billing's (tests/test_renewals.py)."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.billing import Billing
from services.contracts import alerts as dto
from services.whmcs.due import _due_order
from services.whmcs.gateway import WhmcsGateway
from tests.harness.whmcs import Client, WhmcsStandIn
from tests.test_whmcs_orders import TODAY, _setup_renewal


async def due_service(
    gateway: WhmcsGateway, whmcs: WhmcsStandIn, credit: str
) -> tuple[Billing, dto.DueOrder, Client]:
    """A linked client with `credit` and a 5.00 service, as the renewal scan would list it."""
    billing, account_id, service_id, client = await _setup_renewal(gateway, whmcs, credit)
    return billing, _due_order(await billing.get_order(account_id, service_id)), client


@pytest.fixture
def standin(whmcs: WhmcsStandIn) -> WhmcsStandIn:
    whmcs.today = TODAY  # the adapter compares with the real clock
    return whmcs


async def test_renews_once_and_then_skips_the_same_scan(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    billing, due, client = await due_service(whmcs_gateway, standin, "12")

    [result] = await billing.renew_due_orders([due])
    renewed = await billing.get_order(due.account_id, due.order_id)
    assert result == dto.RenewalResult(due.order_id, dto.RENEWAL_DONE, renewed.paid_until, 500)
    assert renewed.paid_until > due.paid_until and client.credit == Decimal("7.00")
    [again] = await billing.renew_due_orders([due])
    assert again.outcome == dto.RENEWAL_SKIPPED and client.credit == Decimal("7.00")
    assert len(standin.called("AddOrder")) == 1


async def test_short_credit_is_told_with_price_and_balance(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    billing, due, client = await due_service(whmcs_gateway, standin, "2")

    [result] = await billing.renew_due_orders([due])
    assert result == dto.RenewalResult(
        due.order_id, dto.RENEWAL_SHORT, price_minor=500, missing_minor=300, balance_minor=200
    )
    assert standin.called("AddOrder") == [] and client.credit == Decimal("2")


async def test_an_order_set_to_cancel_since_the_scan_is_skipped(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    billing, due, client = await due_service(whmcs_gateway, standin, "12")
    await billing.cancel_order(due.account_id, due.order_id, immediately=False)

    [result] = await billing.renew_due_orders([due])
    assert result.outcome == dto.RENEWAL_SKIPPED
    assert standin.called("AddOrder") == [] and client.credit == Decimal("12")
