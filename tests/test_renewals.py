"""Set-based auto-renewal (`renew_due_orders`, services/embedded/renewals.py) and the renewal
scan over it, on SQLite and on PostgreSQL: one charge per period whoever renews it (two
gateways at once), the balance spent in the order given, orders changed since the scan left
alone, and a failure told once per renewal cycle."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from sqlalchemy import select, update

from bot.factory import create_gateway
from services.contracts import alerts as dto
from services.contracts.orders import renewal_key
from services.embedded import models as m
from services.embedded.base import dialect_name
from services.embedded.billing import EmbeddedGateway
from services.embedded.orders import add_months
from tests.conftest import make_settings
from tests.test_alerts import DS_START, NOW, add_order, new_account, order_row, outbox, renew

LEAD = timedelta(hours=24)
DUE = NOW + timedelta(hours=6)  # paid-until of a due order (within the 24 h lead)


@pytest.fixture
async def second_gateway(database_url: str) -> AsyncIterator[EmbeddedGateway]:
    """Another instance on the same database (its own engine and pool)."""
    gw = create_gateway(make_settings(database_url))
    yield gw
    await gw.close()


async def due_orders(gateway: EmbeddedGateway) -> list[dto.DueOrder]:
    async with gateway.transaction() as billing:
        return [o for due in await billing.renewals_due(NOW, LEAD) for o in due.orders]


async def renew_batch(
    gateway: EmbeddedGateway, orders: list[dto.DueOrder]
) -> list[dto.RenewalResult]:
    async with gateway.transaction() as billing:
        return await billing.renew_due_orders(orders)


async def balance(gateway: EmbeddedGateway, account_id: int) -> int:
    """The account's balance, checked against the sum of its ledger."""
    async with gateway.transaction() as billing:
        value = (await billing.get_account(account_id)).balance_minor
        assert await billing.ledger_sum(account_id) == value
        return value


async def renewal_lines(gateway: EmbeddedGateway) -> list[m.LedgerEntry]:
    async with gateway.transaction() as billing:
        rows = await billing.session.scalars(
            select(m.LedgerEntry).where(m.LedgerEntry.kind == "renewal").order_by(m.LedgerEntry.id)
        )
        return list(rows)


def outcomes(results: list[dto.RenewalResult]) -> list[tuple[int, str]]:
    return [(r.order_id, r.outcome) for r in results]


async def test_renews_and_charges_once(gateway: EmbeddedGateway) -> None:
    account = await new_account(gateway, 9101, balance=2000)
    order = await add_order(gateway, account, DUE, auto_renew=True)
    due = await due_orders(gateway)

    [result] = await renew_batch(gateway, due)
    assert result == dto.RenewalResult(order, dto.RENEWAL_DONE, add_months(DUE, 1), 990)
    row = await order_row(gateway, order)
    assert row.paid_until == add_months(DUE, 1) and row.status == "active"
    [line] = await renewal_lines(gateway)
    assert (line.amount_minor, line.balance_after_minor) == (-990, 1010)
    assert line.idempotency_key == renewal_key(order, DUE)
    # The same scan's list again (a retry): the order moved on, nothing is charged twice.
    assert outcomes(await renew_batch(gateway, due)) == [(order, dto.RENEWAL_SKIPPED)]
    assert await balance(gateway, account) == 1010
    assert len(await renewal_lines(gateway)) == 1


async def test_two_instances_at_once_renew_each_order_once(
    gateway: EmbeddedGateway, second_gateway: EmbeddedGateway
) -> None:
    accounts = [await new_account(gateway, 9111 + i, balance=3000) for i in range(4)]
    orders = [await add_order(gateway, a, DUE, auto_renew=True) for a in accounts]
    orders += [await add_order(gateway, accounts[0], DUE, auto_renew=True)]
    due = await due_orders(gateway)
    both_read = asyncio.Barrier(2)

    async def tick(gw: EmbeddedGateway) -> list[dto.RenewalResult]:
        async with gw.transaction() as billing:
            if dialect_name(billing.session) == "postgresql":  # SQLite: BEGIN IMMEDIATE waits
                await billing.renewals_due(NOW, LEAD)  # both scanned before either writes
                await both_read.wait()
            return await billing.renew_due_orders(due)

    first, second = await asyncio.gather(tick(gateway), tick(second_gateway))
    done = [r.order_id for r in first + second if r.outcome == dto.RENEWAL_DONE]
    assert sorted(done) == sorted(orders)
    assert {r.outcome for r in first + second} == {dto.RENEWAL_DONE, dto.RENEWAL_SKIPPED}
    assert len(await renewal_lines(gateway)) == 5
    assert await balance(gateway, accounts[0]) == 3000 - 2 * 990
    for account in accounts[1:]:
        assert await balance(gateway, account) == 3000 - 990
    for order in orders:
        assert (await order_row(gateway, order)).paid_until == add_months(DUE, 1)


async def test_two_scans_on_two_instances_charge_once_and_tell_once(
    gateway: EmbeddedGateway, second_gateway: EmbeddedGateway
) -> None:
    rich = await new_account(gateway, 9121, balance=5000)
    poor = await new_account(gateway, 9122, balance=100)
    renewed = [await add_order(gateway, rich, DUE, auto_renew=True) for _ in range(3)]
    short = await add_order(gateway, poor, DUE, auto_renew=True)

    first, second = await asyncio.gather(renew(gateway), renew(second_gateway))
    assert sorted(first.renewed + second.renewed) == renewed
    assert first.failed + second.failed == [short]
    assert await balance(gateway, rich) == 5000 - 3 * 990
    assert await balance(gateway, poor) == 100
    assert len(await renewal_lines(gateway)) == 3
    texts = [row.payload["text"] for row in await outbox(gateway)]
    assert len(texts) == 2 and sum("Auto-renewal failed" in t for t in texts) == 1


async def test_a_short_order_does_not_stop_the_next_that_fits(gateway: EmbeddedGateway) -> None:
    account = await new_account(gateway, 9131, balance=2000)
    small = await add_order(gateway, account, DUE, auto_renew=True)
    big = await add_order(gateway, account, DUE, tariff_id=DS_START, price=7900, auto_renew=True)
    last = await add_order(gateway, account, DUE, auto_renew=True)
    by_id = {o.order_id: o for o in await due_orders(gateway)}

    results = await renew_batch(gateway, [by_id[small], by_id[big], by_id[last]])
    assert outcomes(results) == [
        (small, dto.RENEWAL_DONE),
        (big, dto.RENEWAL_SHORT),
        (last, dto.RENEWAL_DONE),
    ]
    # Spent in the order given: 2000 - 990 = 1010 when the big one is tried.
    assert (results[1].price_minor, results[1].missing_minor) == (7900, 7900 - 1010)
    assert results[1].balance_minor == 20  # once the batch is done
    lines = await renewal_lines(gateway)
    assert [(x.reference, x.balance_after_minor) for x in lines] == [
        (f"order:{small}", 1010),
        (f"order:{last}", 20),
    ]
    assert await balance(gateway, account) == 20
    assert (await order_row(gateway, big)).paid_until == DUE


async def test_orders_changed_since_the_scan_are_skipped_and_not_charged(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 9141, balance=5000)
    moved, switched_off, cancelling, untouched = [
        await add_order(gateway, account, DUE, auto_renew=True) for _ in range(4)
    ]
    due = await due_orders(gateway)
    changes: dict[int, dict[str, Any]] = {
        moved: {"paid_until": DUE + timedelta(days=30)},
        switched_off: {"auto_renew": False},
        cancelling: {"cancel_at_period_end": True},
    }
    async with gateway.transaction() as billing:
        for order_id, values in changes.items():
            await billing.session.execute(
                update(m.Order).where(m.Order.id == order_id).values(**values)
            )

    assert outcomes(await renew_batch(gateway, due)) == [
        (moved, dto.RENEWAL_SKIPPED),
        (switched_off, dto.RENEWAL_SKIPPED),
        (cancelling, dto.RENEWAL_SKIPPED),
        (untouched, dto.RENEWAL_DONE),
    ]
    assert await balance(gateway, account) == 5000 - 990
    assert [line.reference for line in await renewal_lines(gateway)] == [f"order:{untouched}"]
    assert (await order_row(gateway, moved)).paid_until == DUE + timedelta(days=30)
    assert (await order_row(gateway, switched_off)).paid_until == DUE


async def test_an_order_cancelled_at_period_end_is_never_renewed(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 9151, balance=5000)
    order = await add_order(gateway, account, DUE, auto_renew=True, cancel_at_period_end=True)
    assert await due_orders(gateway) == []
    assert (await renew(gateway)).renewed == []
    # Even handed a stale scan's entry for it.
    row = await order_row(gateway, order)
    stale = dto.DueOrder(order, account, "VPS 2", None, "active", DUE, 1, 990, True)
    assert row.paid_until == DUE and row.auto_renew
    assert outcomes(await renew_batch(gateway, [stale])) == [(order, dto.RENEWAL_SKIPPED)]
    assert await balance(gateway, account) == 5000
    assert await renewal_lines(gateway) == []


async def test_a_period_paid_already_is_skipped(gateway: EmbeddedGateway) -> None:
    account = await new_account(gateway, 9161, balance=5000)
    order = await add_order(gateway, account, DUE, auto_renew=True)
    due = await due_orders(gateway)
    async with gateway.transaction() as billing:  # posted under this period's key elsewhere
        await billing.debit(account, 990, kind="renewal", idempotency_key=renewal_key(order, DUE))

    assert outcomes(await renew_batch(gateway, due)) == [(order, dto.RENEWAL_SKIPPED)]
    assert await balance(gateway, account) == 5000 - 990
    assert len(await renewal_lines(gateway)) == 1
    assert (await order_row(gateway, order)).paid_until == DUE


async def test_a_failure_is_told_once_per_renewal_cycle(gateway: EmbeddedGateway) -> None:
    account = await new_account(gateway, 9171, balance=1500)
    order = await add_order(gateway, account, DUE, auto_renew=True)
    assert (await renew(gateway)).renewed == [order]  # 510 left
    next_due = add_months(DUE, 1)
    cycle = next_due - timedelta(hours=12)

    assert (await renew(gateway, cycle)).failed == [order]
    assert (await renew(gateway, cycle + timedelta(minutes=5))).failed == []
    async with gateway.transaction() as billing:
        await billing.credit(account, 1000, kind="topup")
    assert (await renew(gateway, cycle + timedelta(minutes=10))).renewed == [order]
    # The next cycle (520 left) is short again: told again, once.
    later = add_months(next_due, 1) - timedelta(hours=12)
    assert (await renew(gateway, later)).failed == [order]
    assert (await renew(gateway, later + timedelta(minutes=5))).failed == []
    kinds = [
        "failed" if "Auto-renewal failed" in row.payload["text"] else "renewed"
        for row in await outbox(gateway)
    ]
    assert kinds == ["renewed", "failed", "renewed", "failed"]
    assert await balance(gateway, account) == 520
