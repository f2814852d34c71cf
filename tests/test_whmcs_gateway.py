"""The composed gateway in front of WHMCS: core calls go to WHMCS with no local transaction
open, store calls to the bot's own database, and WHMCS faults become BillingUnavailable."""

from __future__ import annotations

from decimal import Decimal

import pytest

from services.billing import per_call
from services.errors import BillingUnavailable, NotLinked
from services.whmcs.gateway import StoreAfterCoreError, WhmcsGateway
from tests.harness.whmcs import Fault, WhmcsStandIn
from tests.whmcs_fixtures import linked_account


async def test_an_account_shows_its_clients_credit_and_currency(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal("12.50"))
    account = await linked_account(whmcs_gateway, 501, alice)
    assert (account.balance_minor, account.base_currency) == (1250, "USD")
    billing = per_call(whmcs_gateway)
    stranger, created = await billing.get_or_create_account(502, 502, name="Bob")
    assert created and stranger.balance_minor == 0
    assert await billing.billing_client_id(stranger.id) is None


async def test_whmcs_down_or_refusing_is_billing_unavailable(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    account = await linked_account(whmcs_gateway, 501, alice)
    whmcs_gateway.core._client_changed(alice.id)  # type: ignore[attr-defined]
    billing = per_call(whmcs_gateway)
    whmcs.fail_next(Fault.MAINTENANCE, "GetClientsDetails", times=2)
    with pytest.raises(BillingUnavailable) as unreachable:
        await billing.get_account(account.id)
    assert unreachable.value.reason == "unreachable"
    whmcs.fail_next(Fault.AUTH, "GetClientsDetails")
    with pytest.raises(BillingUnavailable) as refused:
        await billing.get_account(account.id)
    assert refused.value.reason == "refused"
    assert (await billing.get_account(account.id)).balance_minor == 0  # back


async def test_an_unlinked_account_is_told_to_link(whmcs_gateway: WhmcsGateway) -> None:
    billing = per_call(whmcs_gateway)
    account, _ = await billing.get_or_create_account(503, 503, name="Carol")
    core = whmcs_gateway.core
    with pytest.raises(NotLinked):
        await core._client_of(account.id)  # type: ignore[attr-defined]


async def test_a_block_asks_whmcs_first_and_writes_the_store_after(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    account = await linked_account(whmcs_gateway, 501, alice)
    async with whmcs_gateway.transaction() as billing:
        assert (await billing.get_account(account.id)).id == account.id
        await billing.put_adapter_state("test", "k", {"v": 1})
        with pytest.raises(StoreAfterCoreError):
            await billing.get_account(account.id)
    async with whmcs_gateway.transaction(read_only=True) as billing:
        assert await billing.get_adapter_state("test", "k") == {"v": 1}


async def test_a_failed_block_rolls_the_store_back(whmcs_gateway: WhmcsGateway) -> None:
    with pytest.raises(ZeroDivisionError):
        async with whmcs_gateway.transaction() as billing:
            await billing.put_adapter_state("test", "gone", {"v": 1})
            1 / 0  # noqa: B018
    async with whmcs_gateway.transaction(read_only=True) as billing:
        assert await billing.get_adapter_state("test", "gone") is None


async def test_the_lookup_of_every_update_survives_whmcs_being_down(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    """The account of an update is still found (the last credit seen, marked unknown), so a
    payment or a ticket reaches its handler; a screen asking for the balance itself fails."""
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal("3.00"))
    account = await linked_account(whmcs_gateway, 501, alice)
    billing = per_call(whmcs_gateway)
    await whmcs.go_down()
    whmcs_gateway.core._client_changed(alice.id)  # type: ignore[attr-defined]
    seen, created = await billing.get_or_create_account(501, 501, name="Alice")
    assert (created, seen.balance_minor, seen.balance_known) == (False, 300, False)
    found = await billing.find_account_by_telegram(501)
    assert found is not None and found.balance_known is False
    with pytest.raises(BillingUnavailable):
        await billing.get_account(account.id)
    await whmcs.come_back()
    fresh = await billing.find_account_by_telegram(501)
    assert fresh is not None and (fresh.balance_minor, fresh.balance_known) == (300, True)


async def test_a_client_never_read_shows_an_unknown_balance_while_whmcs_is_down(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal("3.00"))
    local = per_call(whmcs_gateway.local)
    account, _ = await local.get_or_create_account(501, 501, name="Alice")
    await local.link_billing_client(account.id, alice.id)
    await whmcs.go_down()
    seen = await per_call(whmcs_gateway).find_account_by_telegram(501)
    assert seen is not None and (seen.balance_minor, seen.balance_known) == (0, False)
