"""The catalogue, orders, renewals, tariff changes, cancellation and new orders over WHMCS
(the stand-in), the bot's records on SQLite and PostgreSQL."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.billing import Billing, per_call
from services.contracts.orders import ACTIVE, PENDING
from services.errors import BillingUnavailable, InsufficientFunds, InvalidState, NotFound
from services.whmcs.gateway import WhmcsGateway
from tests.harness.whmcs import Client, Fault, WhmcsStandIn
from tests.whmcs_fixtures import linked_account

TODAY = datetime.now(UTC).date()


@pytest.fixture
def standin(whmcs: WhmcsStandIn) -> WhmcsStandIn:
    whmcs.today = TODAY  # the adapter compares with the real clock
    return whmcs


def alice(whmcs: WhmcsStandIn, credit: str = "0") -> Client:
    return whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal(credit))


def unpaid(whmcs: WhmcsStandIn) -> list[int]:
    return [i.id for i in whmcs.invoices.values() if i.status == "Unpaid"]


async def test_catalogue_maps_products_and_leaves_disabled_cycles_out(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    # The catalogue is priced in the bot's base currency (WHMCS's default one): EUR here.
    currency = whmcs_gateway.base_currency
    vps = standin.add_product("VPS 1", "5.00", currency, annually="50.00")
    server = standin.add_product("DS 1", "80.00", currency)
    server.type = "server"
    free = standin.add_product("Trial", "0.00", currency)
    free.paytype = "free"
    standin.add_product("Dollars only", "1.00", "USD" if currency != "USD" else "EUR")
    billing = per_call(whmcs_gateway)
    assert await billing.list_product_types() == ["hostingaccount", "server"]
    tariff = await billing.get_tariff(vps.pid)
    assert [(p.months, p.price_minor) for p in tariff.prices] == [(1, 500), (12, 5000)]
    assert [t.id for t in await billing.list_tariffs("server")] == [server.pid]
    with pytest.raises(NotFound):
        await billing.get_tariff(free.pid)


async def test_orders_list_search_sort_page_and_ownership(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    client = alice(standin)
    bob = standin.add_client("Bob", "Jones", "bob@example.com")
    small = standin.add_product("VPS Small", "5.00")
    big = standin.add_product("VPS Big", "20.00")
    first = standin.add_service(client, small, dedicatedip="10.0.0.1")
    second = standin.add_service(client, big, dedicatedip="10.0.0.2", status="Suspended")
    third = standin.add_service(client, small, status="Terminated")
    theirs = standin.add_service(bob, big)
    account = await linked_account(whmcs_gateway, 501, client)
    billing = per_call(whmcs_gateway)
    page = await billing.list_orders(account.id, sort="cost", descending=True, limit=2)
    assert (page.total, [o.id for o in page.items]) == (3, [second.id, third.id])
    assert [o.status for o in page.items] == ["suspended", "cancelled"]
    rest = await billing.list_orders(account.id, sort="cost", offset=2, limit=2)
    assert [o.id for o in rest.items] == [first.id]
    assert [o.id for o in (await billing.list_orders(account.id, query="10.0.0.2")).items] == [
        second.id
    ]
    found = await billing.list_orders(account.id, query="big")
    assert [o.id for o in found.items] == [second.id]
    order = await billing.get_order(account.id, first.id)
    assert (order.price_minor, order.period_months, order.ip_address) == (500, 1, "10.0.0.1")
    assert order.auto_renew and order.status == ACTIVE
    with pytest.raises(NotFound):
        await billing.get_order(account.id, theirs.id)


async def _setup_renewal(
    gateway: WhmcsGateway, whmcs: WhmcsStandIn, credit: str
) -> tuple[Billing, int, int, Client]:
    client = alice(whmcs, credit)
    product = whmcs.add_product("VPS 1", "5.00")
    service = whmcs.add_service(client, product)
    account = await linked_account(gateway, 501, client)
    return per_call(gateway), account.id, service.id, client


async def test_renew_from_credit_once_per_key(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    billing, account_id, service_id, client = await _setup_renewal(whmcs_gateway, standin, "12")
    before = await billing.get_order(account_id, service_id)
    [quote] = await billing.renewal_options(account_id, service_id)
    assert (quote.amount_minor, quote.months) == (500, 1)
    renewed = await billing.renew_order(account_id, service_id, 1, idempotency_key="press-1")
    assert renewed.paid_until > before.paid_until
    assert client.credit == Decimal("7.00")
    again = await billing.renew_order(account_id, service_id, 1, idempotency_key="press-1")
    assert again.paid_until == renewed.paid_until and client.credit == Decimal("7.00")
    assert len(standin.called("AddOrder")) == 1 and unpaid(standin) == []
    paid = [i for i in standin.invoices.values() if i.status == "Paid"]
    assert len(paid) == 1


async def test_renew_without_enough_credit_creates_no_invoice(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    billing, account_id, service_id, _ = await _setup_renewal(whmcs_gateway, standin, "2")
    with pytest.raises(InsufficientFunds) as short:
        await billing.renew_order(account_id, service_id, 1, idempotency_key="k")
    assert short.value.missing_minor == 300
    assert standin.called("AddOrder") == [] and standin.invoices == {}


async def test_whmcs_down_during_renewal_then_a_retry_renews_once(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    billing, account_id, service_id, client = await _setup_renewal(whmcs_gateway, standin, "12")
    whmcs_gateway.core._client_changed(client.id)  # type: ignore[attr-defined]
    await standin.go_down()
    with pytest.raises(BillingUnavailable):
        await billing.renew_order(account_id, service_id, 1, idempotency_key="k")
    await standin.come_back()
    first = await billing.renew_order(account_id, service_id, 1, idempotency_key="k")
    second = await billing.renew_order(account_id, service_id, 1, idempotency_key="k")
    assert first.paid_until == second.paid_until
    assert client.credit == Decimal("7.00") and len(standin.called("AddOrder")) == 1


async def test_change_tariff_quote_and_upgrade(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    client = alice(standin, "50")
    small = standin.add_product("VPS Small", "5.00")
    big = standin.add_product("VPS Big", "35.00")
    service = standin.add_service(client, small)
    account = await linked_account(whmcs_gateway, 501, client)
    billing = per_call(whmcs_gateway)
    [option] = await billing.change_tariff_options(account.id, service.id)
    assert (option.tariff_id, option.amount_minor) == (big.pid, 1000)  # 30.00 * 10/30 days
    order = await billing.change_tariff(
        account.id, service.id, big.pid, expected_amount_minor=option.amount_minor
    )
    assert order.tariff_id == big.pid and client.credit == Decimal("40.00")
    assert unpaid(standin) == []


async def test_cancel_at_period_end_and_immediately(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    client = alice(standin)
    product = standin.add_product("VPS 1", "5.00")
    later = standin.add_service(client, product)
    now = standin.add_service(client, product)
    account = await linked_account(whmcs_gateway, 501, client)
    billing = per_call(whmcs_gateway)
    order = await billing.cancel_order(account.id, later.id, immediately=False)
    assert order.cancel_at_period_end and not order.auto_renew
    assert later.cancel_request == "End of Billing Period"
    with pytest.raises(InvalidState):
        await billing.resume_order(account.id, later.id)  # WHMCS cannot undo a request
    gone = await billing.cancel_order(account.id, now.id, immediately=True)
    assert now.cancel_request == "Immediate" and gone.cancelled_at is not None
    with pytest.raises(InvalidState):
        await billing.cancel_order(account.id, now.id, immediately=True)


async def test_new_order_paid_from_credit_and_the_cart(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    client = alice(standin, "8")
    product = standin.add_product("VPS 1", "5.00")
    account = await linked_account(whmcs_gateway, 501, client)
    billing = per_call(whmcs_gateway)
    quote = await billing.quote_new_order(account.id, product.pid, 1)
    assert (quote.amount_minor, quote.missing_minor) == (500, 0)
    order = await billing.place_order(account.id, product.pid, 1, idempotency_key="n1")
    assert order.status == ACTIVE and client.credit == Decimal("3.00")
    same = await billing.place_order(account.id, product.pid, 1, idempotency_key="n1")
    assert same.id == order.id and len(standin.called("AddOrder")) == 1
    cart = await billing.save_cart(account.id, product.pid, 1)
    assert (await billing.get_cart(account.id)) == cart
    with pytest.raises(InsufficientFunds):
        await billing.complete_cart(account.id)
    assert await billing.get_cart(account.id) is not None and unpaid(standin) == []
    client.credit += Decimal("5")
    placed = await billing.complete_cart(account.id)
    assert placed.id != order.id and await billing.get_cart(account.id) is None
    assert placed.status in (ACTIVE, PENDING) and client.credit == Decimal("3.00")
    assert placed.paid_until >= datetime.now(UTC) - timedelta(days=1)


async def test_a_lost_renewal_answer_pays_the_invoice_made_the_first_time(
    whmcs_gateway: WhmcsGateway, standin: WhmcsStandIn
) -> None:
    billing, account_id, service_id, client = await _setup_renewal(whmcs_gateway, standin, "12")
    standin.fail_next(Fault.RESET, "AddOrder", performed=True)  # ordered, the answer lost
    with pytest.raises(BillingUnavailable):
        await billing.renew_order(account_id, service_id, 1, idempotency_key="k")
    assert len(unpaid(standin)) == 1
    await billing.renew_order(account_id, service_id, 1, idempotency_key="k")
    assert unpaid(standin) == [] and len(standin.called("AddOrder")) == 1
    assert client.credit == Decimal("7.00")
