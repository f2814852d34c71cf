"""The bot store's records for an external billing: account links and adapter state, on
SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import pytest

from services.embedded.billing import EmbeddedGateway
from services.errors import NotFound


async def _account(gateway: EmbeddedGateway, telegram_id: int) -> int:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(
            telegram_id, telegram_id, name=f"U{telegram_id}"
        )
    return account.id


async def test_a_client_is_linked_to_one_telegram_account(gateway: EmbeddedGateway) -> None:
    alice, bob = await _account(gateway, 501), await _account(gateway, 502)
    async with gateway.transaction() as billing:
        assert await billing.billing_client_id(alice) is None
        await billing.link_billing_client(alice, 42)
    async with gateway.transaction(read_only=True) as billing:
        assert await billing.billing_client_id(alice) == 42
        assert await billing.account_id_of_billing_client(42) == alice
    # Bob proves he owns client 42 too: the link moves, it is never shared.
    async with gateway.transaction() as billing:
        await billing.link_billing_client(bob, 42)
        await billing.link_billing_client(alice, 7)
    async with gateway.transaction(read_only=True) as billing:
        assert await billing.account_id_of_billing_client(42) == bob
        assert await billing.linked_accounts() == [(alice, 7), (bob, 42)]
        assert await billing.linked_accounts(after_account_id=alice) == [(bob, 42)]
    async with gateway.transaction() as billing:
        await billing.unlink_billing_client(bob)
    async with gateway.transaction(read_only=True) as billing:
        assert await billing.account_id_of_billing_client(42) is None
        assert await billing.linked_accounts() == [(alice, 7)]
    with pytest.raises(NotFound):
        async with gateway.transaction() as billing:
            await billing.link_billing_client(999_999, 1)


async def test_adapter_state_is_kept_replaced_taken_once_and_expires(
    gateway: EmbeddedGateway,
) -> None:
    soon = datetime.now(UTC) + timedelta(hours=1)
    async with gateway.transaction() as billing:
        assert await billing.get_adapter_state("cart", "1") is None
        await billing.put_adapter_state("cart", "1", {"pid": 3, "months": 1})
        await billing.put_adapter_state("cart", "1", {"pid": 4, "months": 12})
        await billing.put_adapter_state("token", "abc", {"client": 42}, expires_at=soon)
        await billing.put_adapter_state("token", "old", {"client": 43}, expires_at=soon)
    async with gateway.transaction(read_only=True) as billing:
        assert await billing.get_adapter_state("cart", "1") == {"pid": 4, "months": 12}
        assert await billing.get_adapter_state("token", "1") is None  # kinds apart
    async with gateway.transaction() as billing:
        assert await billing.take_adapter_state("token", "abc") == {"client": 42}
        assert await billing.take_adapter_state("token", "abc") is None
        await billing.delete_adapter_state("cart", "1")
        assert await billing.get_adapter_state("cart", "1") is None
        past = datetime.now(UTC) - timedelta(seconds=1)
        await billing.put_adapter_state("token", "old", {"client": 43}, expires_at=past)
    async with gateway.transaction() as billing:
        assert await billing.get_adapter_state("token", "old") is None
        assert await billing.take_adapter_state("token", "old") is None  # expired: not taken


async def test_concurrent_takers_get_a_record_once(gateway: EmbeddedGateway) -> None:
    async with gateway.transaction() as billing:
        await billing.put_adapter_state("token", "once", {"client": 1})

    async def take() -> object:
        async with gateway.transaction() as billing:
            return await billing.take_adapter_state("token", "once")

    results = await asyncio.gather(*(take() for _ in range(5)))
    assert results.count({"client": 1}) == 1
    assert results.count(None) == 4
