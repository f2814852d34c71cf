"""The orders domain of the embedded billing, on SQLite and on PostgreSQL."""

from __future__ import annotations

import asyncio
import math
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from fractions import Fraction

import pytest
from sqlalchemy import update

from services.contracts.orders import renewal_key
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.embedded.orders import add_months, prorate
from services.errors import InsufficientFunds, InvalidState, NotFound, ValidationFailed

# Demo catalogue (services/embedded/seed.py): id 1 DS Start 7900/mo, 2 DS Pro 12900/mo,
# 3 DS Max 19900/mo, 4 VPS 1 490/mo, 5 VPS 2 990/mo, 6 VPS 4 1990/mo; 3 months = 97 %.
DS_START, DS_PRO, DS_MAX_ID, VPS_1, VPS_2 = 1, 2, 3, 4, 5


async def new_account(gateway: EmbeddedGateway, telegram_id: int, balance: int = 0) -> int:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(telegram_id, telegram_id)
        if balance:
            await billing.credit(account.id, balance, kind="topup")
        return account.id


async def set_paid_until(
    gateway: EmbeddedGateway, order_id: int, paid_until: datetime, **values: object
) -> None:
    async with gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Order).where(m.Order.id == order_id).values(paid_until=paid_until, **values)
        )


async def balance_and_ledger(gateway: EmbeddedGateway, account_id: int) -> tuple[int, int]:
    async with gateway.transaction() as billing:
        account = await billing.get_account(account_id)
        return account.balance_minor, await billing.ledger_sum(account_id)


def test_add_months_clamps_to_the_end_of_a_short_month() -> None:
    assert add_months(datetime(2026, 1, 31, 10, tzinfo=UTC), 1) == datetime(
        2026, 2, 28, 10, tzinfo=UTC
    )
    assert add_months(datetime(2026, 11, 30, tzinfo=UTC), 3) == datetime(2027, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 3, 31, tzinfo=UTC), -1) == datetime(2026, 2, 28, tzinfo=UTC)
    assert add_months(datetime(2026, 12, 5, tzinfo=UTC), 12) == datetime(2027, 12, 5, tzinfo=UTC)


def test_prorate_counts_the_days_the_screens_show_and_never_pays_a_round_trip() -> None:
    now = datetime(2026, 11, 25, 7, 0, tzinfo=UTC)
    paid_until = datetime(2026, 12, 5, 12, 0, tzinfo=UTC)  # 10 days 5 hours left of 30
    # Both directions count the 11 started days the order's screen shows.
    # Upgrade 7900 -> 12900: 5000 * 11 / 30 = 1833.33 -> charged 1834 (rounded up).
    assert prorate(7900, 12900, paid_until, 1, now) == (1834, 11, 30)
    # Downgrade 12900 -> 7900: the same 1833.33 -> credited 1833 (rounded down).
    assert prorate(12900, 7900, paid_until, 1, now) == (-1833, 11, 30)
    # Less than a day left: one started day, both ways.
    almost = paid_until - timedelta(hours=3)
    assert prorate(7900, 12900, paid_until, 1, almost) == (167, 1, 30)
    assert prorate(12900, 7900, paid_until, 1, almost) == (-166, 1, 30)
    assert prorate(7900, 12900, paid_until, 1, paid_until) == (0, 0, 30)
    # An exact amount is not rounded: 5000 * 6 / 30 = 1000 both ways.
    six = paid_until - timedelta(days=6)
    assert prorate(7900, 12900, paid_until, 1, six) == (1000, 6, 30)
    assert prorate(12900, 7900, paid_until, 1, six) == (-1000, 6, 30)
    # A three-month period (Sep 5 .. Dec 5 = 91 days): 14550 * 11 / 91 = 1758.79.
    assert prorate(22989, 37539, paid_until, 3, now) == (1759, 11, 91)
    assert prorate(37539, 22989, paid_until, 3, now) == (-1758, 11, 91)
    # The days are Order.days_left's figure at any moment, and a charge is never smaller
    # than the credit straight back.
    for hours in range(0, 24 * 91, 7):
        moment = paid_until - timedelta(hours=hours, minutes=13)
        up, days, _ = prorate(2881, 5731, paid_until, 3, moment)
        down, back_days, _ = prorate(5731, 2881, paid_until, 3, moment)
        assert days == back_days == math.ceil((paid_until - moment).total_seconds() / 86400)
        assert up + down >= 0


async def test_place_order_debits_assigns_ips_and_keeps_the_ledger(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await new_account(gateway, 7001, balance=20000)
    async with gateway.transaction() as billing:
        first = await billing.place_order(account_id, VPS_2, 3)
        second = await billing.place_order(account_id, DS_START, 1)
    assert (first.status, first.ip_address, first.price_minor) == ("active", "203.0.113.10", 2881)
    assert first.tariff_name == "VPS 2" and first.product_type == "vps"
    assert first.period_months == 3 and first.auto_renew is True
    assert first.paid_until == add_months(first.created_at, 3)
    assert (second.ip_address, second.price_minor) == ("203.0.113.11", 7900)
    assert await balance_and_ledger(gateway, account_id) == (20000 - 2881 - 7900,) * 2


async def test_place_order_without_enough_money_changes_nothing(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7002, balance=500)
    with pytest.raises(InsufficientFunds) as caught:
        async with gateway.transaction() as billing:
            await billing.place_order(account_id, VPS_2, 1)
    assert (caught.value.missing_minor, caught.value.currency) == (490, "EUR")
    async with gateway.transaction() as billing:
        assert (await billing.list_orders(account_id)).total == 0
        quote = await billing.quote_new_order(account_id, VPS_2, 1)
    assert (quote.amount_minor, quote.balance_minor, quote.missing_minor) == (990, 500, 490)
    assert await balance_and_ledger(gateway, account_id) == (500, 500)


async def test_place_order_with_a_repeated_key_creates_one_order(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7003, balance=5000)
    async with gateway.transaction() as billing:
        first = await billing.place_order(account_id, VPS_1, 1, idempotency_key="no:1:1")
    async with gateway.transaction() as billing:
        again = await billing.place_order(account_id, VPS_1, 1, idempotency_key="no:1:1")
        assert (await billing.list_orders(account_id)).total == 1
    assert again == first
    assert await balance_and_ledger(gateway, account_id) == (4510, 4510)


async def test_unknown_tariff_or_period_is_rejected(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7004, balance=50000)
    async with gateway.transaction() as billing:
        with pytest.raises(NotFound):
            await billing.place_order(account_id, 999, 1)
        with pytest.raises(ValidationFailed) as caught:
            await billing.place_order(account_id, VPS_1, 7)
    assert caught.value.detail == "period_not_offered"


async def test_ip_pool_first_free_address_and_release_on_cancel(
    gateway: EmbeddedGateway,
) -> None:
    small = EmbeddedGateway(gateway.engine, replace(gateway.config, ip_pool="10.0.0.1-10.0.0.2"))
    account_id = await new_account(gateway, 7005, balance=50000)
    async with small.transaction() as billing:
        a = await billing.place_order(account_id, VPS_1, 1)
        b = await billing.place_order(account_id, VPS_1, 1)
        assert (a.ip_address, b.ip_address) == ("10.0.0.1", "10.0.0.2")
        with pytest.raises(InvalidState) as caught:
            await billing.place_order(account_id, VPS_1, 1)
        assert caught.value.detail == "ip_pool_exhausted"
    async with small.transaction() as billing:
        cancelled = await billing.cancel_order(account_id, a.id, immediately=True)
        assert (cancelled.status, cancelled.ip_address) == ("cancelled", None)
        assert cancelled.released_ip == "10.0.0.1"  # kept in the order's history
        c = await billing.place_order(account_id, VPS_1, 1)
    assert c.ip_address == "10.0.0.1"
    async with small.transaction() as billing:
        history = await billing.get_order(account_id, a.id)
    assert (history.ip_address, history.released_ip) == (None, "10.0.0.1")


async def test_list_search_sort_and_paging(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7006, balance=100000)
    other_id = await new_account(gateway, 7007, balance=10000)
    async with gateway.transaction() as billing:
        o1 = await billing.place_order(account_id, VPS_1, 1)  # 490, .10
        o2 = await billing.place_order(account_id, DS_START, 1)  # 7900, .11
        o3 = await billing.place_order(account_id, VPS_2, 12)  # 10692, .12
        foreign = await billing.place_order(other_id, VPS_1, 1)
    later = datetime.now(UTC) + timedelta(days=3)
    await set_paid_until(gateway, o1.id, later, created_at=later - timedelta(days=40))
    await set_paid_until(gateway, o2.id, later - timedelta(days=10), status="expired")
    async with gateway.transaction() as billing:

        async def ids(**kwargs: object) -> list[int]:
            return [o.id for o in (await billing.list_orders(account_id, **kwargs)).items]

        assert await ids() == [o3.id, o2.id, o1.id]  # newest first; o1 backdated
        # by the monthly price: o3's year is the dearest period but €8.91 a month
        assert await ids(sort="cost", descending=False) == [o1.id, o3.id, o2.id]
        assert await ids(sort="paid_until", descending=True) == [o3.id, o1.id, o2.id]
        assert await ids(sort="status", descending=False) == [o1.id, o3.id, o2.id]
        assert await ids(query="vps") == [o3.id, o1.id]
        assert await ids(query="VPS 2") == [o3.id]
        assert await ids(query="113.11") == [o2.id]
        assert await ids(query=f"#{o2.id}") == [o2.id]
        assert await ids(query="%") == []
        assert await ids(query=str(foreign.id)) == []
        page = await billing.list_orders(account_id, offset=2, limit=2)
        assert ([o.id for o in page.items], page.total, page.page_number, page.page_count) == (
            [o1.id],
            3,
            2,
            2,
        )
        with pytest.raises(ValidationFailed):
            await billing.list_orders(account_id, sort="name")
        with pytest.raises(NotFound):
            await billing.get_order(account_id, foreign.id)


async def test_renew_active_extends_from_paid_until_once_per_period(
    gateway: EmbeddedGateway,
) -> None:
    account_id = await new_account(gateway, 7010, balance=10000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_2, 1)
    start = order.paid_until
    async with gateway.transaction() as billing:
        renewed = await billing.renew_order(account_id, order.id, 3)
    assert renewed.paid_until == add_months(start, 3)
    assert (renewed.status, renewed.period_months, renewed.price_minor) == ("active", 3, 2881)
    # The same period confirmed again (the user's second press): no second debit.
    async with gateway.transaction() as billing:
        again = await billing.renew_order(account_id, order.id, 3, period_start=start)
        same_key = await billing.renew_order(
            account_id, order.id, 3, idempotency_key=renewal_key(order.id, start)
        )
    assert again == renewed and same_key == renewed
    assert await balance_and_ledger(gateway, account_id) == (10000 - 990 - 2881,) * 2
    async with gateway.transaction() as billing:
        lines = (await billing.list_ledger(account_id)).items
    assert [(line.kind, line.amount_minor, line.reference) for line in lines[:2]] == [
        ("renewal", -2881, f"order:{order.id}"),
        ("order", -990, f"order:{order.id}"),
    ]


async def test_renew_expired_or_suspended_extends_from_now(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7011, balance=10000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_1, 1)
    long_ago = datetime(2026, 1, 10, 12, 0, tzinfo=UTC)
    await set_paid_until(gateway, order.id, long_ago, status="suspended")
    before = datetime.now(UTC).replace(microsecond=0)
    async with gateway.transaction() as billing:
        renewed = await billing.renew_order(account_id, order.id, 1)
    after = datetime.now(UTC)
    assert renewed.status == "active"
    assert add_months(before, 1) <= renewed.paid_until <= add_months(after, 1)
    assert await balance_and_ledger(gateway, account_id) == (10000 - 490 - 490,) * 2
    async with gateway.transaction() as billing:
        used = await billing.session.scalar(
            m.LedgerEntry.__table__.select()
            .with_only_columns(m.LedgerEntry.idempotency_key)
            .where(m.LedgerEntry.kind == "renewal")
        )
    assert used == renewal_key(order.id, long_ago)


async def test_renew_refusals_change_nothing(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7012, balance=1500)
    other_id = await new_account(gateway, 7013, balance=5000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_1, 1)  # balance 1010
        foreign = await billing.place_order(other_id, VPS_1, 1)
        gone = await billing.place_order(other_id, VPS_1, 1)
        await billing.cancel_order(other_id, gone.id, immediately=True)
    async with gateway.transaction() as billing:
        with pytest.raises(ValidationFailed) as not_offered:
            await billing.renew_order(account_id, order.id, 2)
        with pytest.raises(NotFound):
            await billing.renew_order(account_id, foreign.id, 1)
        with pytest.raises(InvalidState):
            await billing.renew_order(other_id, gone.id, 1)
        with pytest.raises(InsufficientFunds) as short:
            await billing.renew_order(account_id, order.id, 3)  # 1426
    assert not_offered.value.detail == "period_not_offered"
    assert short.value.missing_minor == 1426 - 1010
    async with gateway.transaction() as billing:
        assert await billing.get_order(account_id, order.id) == order
    assert await balance_and_ledger(gateway, account_id) == (1010, 1010)


@pytest.mark.parametrize("how", ["period_start", "idempotency_key"])
async def test_fifty_concurrent_renew_confirmations_debit_once(
    gateway: EmbeddedGateway, how: str
) -> None:
    account_id = await new_account(gateway, 7020, balance=100000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_2, 1)
    start = order.paid_until
    kwargs = {how: start if how == "period_start" else renewal_key(order.id, start)}
    results = []

    async def confirm() -> None:
        async with gateway.transaction() as billing:
            results.append(await billing.renew_order(account_id, order.id, 1, **kwargs))

    await asyncio.gather(*(confirm() for _ in range(50)))
    assert len(results) == 50
    assert {r.paid_until for r in results} <= {add_months(start, 1)}
    assert await balance_and_ledger(gateway, account_id) == (100000 - 990 * 2,) * 2
    async with gateway.transaction() as billing:
        final = await billing.get_order(account_id, order.id)
    assert final.paid_until == add_months(start, 1)


async def test_fifty_concurrent_renewals_never_overdraw(gateway: EmbeddedGateway) -> None:
    """Different periods (default keys) racing on a balance that covers two renewals."""
    account_id = await new_account(gateway, 7021, balance=990 + 2 * 990 + 500)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_2, 1)
    outcomes: list[str] = []

    async def renew() -> None:
        try:
            async with gateway.transaction() as billing:
                await billing.renew_order(account_id, order.id, 1)
            outcomes.append("ok")
        except InsufficientFunds:
            outcomes.append("short")

    await asyncio.gather(*(renew() for _ in range(50)))
    assert sorted(outcomes) == ["ok"] * 2 + ["short"] * 48
    assert await balance_and_ledger(gateway, account_id) == (500, 500)
    async with gateway.transaction() as billing:
        final = await billing.get_order(account_id, order.id)
    assert final.paid_until == add_months(order.paid_until, 2)


async def test_change_tariff_upgrade_and_downgrade(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7030, balance=30000)
    other_id = await new_account(gateway, 7031, balance=30000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, DS_START, 1)  # balance 22100
    paid_until = (datetime.now(UTC) + timedelta(days=10, hours=5)).replace(microsecond=0)
    await set_paid_until(gateway, order.id, paid_until)
    period_days = (paid_until - add_months(paid_until, -1)).days
    up = -(-5000 * 11 // period_days)  # 11 started days, rounded up
    down = 5000 * 11 // period_days  # the same days, rounded down
    async with gateway.transaction() as billing:
        options = await billing.change_tariff_options(account_id, order.id)
        assert [(q.tariff_name, q.amount_minor) for q in options] == [
            ("DS Pro", up),
            ("DS Max", -(-12000 * 11 // period_days)),
        ]
        with pytest.raises(NotFound):
            await billing.quote_tariff_change(other_id, order.id, DS_PRO)
        with pytest.raises(ValidationFailed):
            await billing.quote_tariff_change(account_id, order.id, VPS_1)
        with pytest.raises(ValidationFailed) as changed:
            await billing.change_tariff(account_id, order.id, DS_PRO, expected_amount_minor=1)
        assert changed.value.detail == "quote_changed"
    async with gateway.transaction() as billing:
        upgraded = await billing.change_tariff(
            account_id, order.id, DS_PRO, expected_amount_minor=up
        )
        with pytest.raises(InvalidState):
            await billing.change_tariff(account_id, order.id, DS_PRO)
    assert (upgraded.tariff_name, upgraded.price_minor, upgraded.paid_until) == (
        "DS Pro",
        12900,
        paid_until,
    )
    assert await balance_and_ledger(gateway, account_id) == (22100 - up,) * 2
    async with gateway.transaction() as billing:
        quote = await billing.quote_tariff_change(account_id, order.id, DS_START)
        assert (quote.amount_minor, quote.remaining_days) == (-down, 11)
        downgraded = await billing.change_tariff(account_id, order.id, DS_START)
    assert (downgraded.tariff_name, downgraded.price_minor) == ("DS Start", 7900)
    assert await balance_and_ledger(gateway, account_id) == (22100 - up + down,) * 2


async def test_tariff_up_and_straight_back_never_makes_money(gateway: EmbeddedGateway) -> None:
    """Balance plus what is left of the paid period (at the order's price, for the days left
    the screens show) never grows however often the customer changes up and back."""
    account_id = await new_account(gateway, 7034, balance=100000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_1, 3)
    # 89 days and 12 hours left of a three-month period: a day boundary is half a day away.
    paid_until = (datetime.now(UTC) + timedelta(days=89, hours=12)).replace(microsecond=0)
    await set_paid_until(gateway, order.id, paid_until)
    period_days = (paid_until - add_months(paid_until, -3)).days

    async def worth() -> Fraction:
        async with gateway.transaction() as billing:
            current = await billing.get_order(account_id, order.id)
            balance = (await billing.get_account(account_id)).balance_minor
        days = current.days_left(datetime.now(UTC))
        return balance + Fraction(current.price_minor * days, period_days)

    start_balance, _ = await balance_and_ledger(gateway, account_id)
    before = await worth()
    for _cycle in range(10):
        for tariff in (VPS_2, VPS_1):
            async with gateway.transaction() as billing:
                quote = await billing.quote_tariff_change(account_id, order.id, tariff)
                assert quote.remaining_days == 90
                await billing.change_tariff(
                    account_id, order.id, tariff, expected_amount_minor=quote.amount_minor
                )
            after = await worth()
            assert after <= before
            before = after
    balance, ledger = await balance_and_ledger(gateway, account_id)
    assert balance == ledger <= start_balance


async def test_change_tariff_needs_an_active_paid_period(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7032, balance=30000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, DS_START, 1)
    await set_paid_until(gateway, order.id, datetime.now(UTC) - timedelta(hours=1))
    async with gateway.transaction() as billing:
        with pytest.raises(InvalidState):
            await billing.change_tariff_options(account_id, order.id)
        with pytest.raises(InvalidState):
            await billing.change_tariff(account_id, order.id, DS_PRO)


async def test_upgrade_without_enough_money_changes_nothing(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7033, balance=7900)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, DS_START, 1)
    with pytest.raises(InsufficientFunds):
        async with gateway.transaction() as billing:
            await billing.change_tariff(account_id, order.id, DS_MAX_ID)
    async with gateway.transaction() as billing:
        assert (await billing.get_order(account_id, order.id)).tariff_name == "DS Start"
    assert await balance_and_ledger(gateway, account_id) == (0, 0)


async def test_cancel_resume_and_auto_renew(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7040, balance=5000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_1, 1)
        off = await billing.set_order_auto_renew(account_id, order.id, False)
        on = await billing.set_order_auto_renew(account_id, order.id, True)
        scheduled = await billing.cancel_order(account_id, order.id, immediately=False)
        with pytest.raises(InvalidState):
            await billing.set_order_auto_renew(account_id, order.id, True)
        resumed = await billing.resume_order(account_id, order.id)
        with pytest.raises(InvalidState):
            await billing.resume_order(account_id, order.id)
    assert (off.auto_renew, on.auto_renew) == (False, True)
    assert (scheduled.status, scheduled.cancel_at_period_end, scheduled.auto_renew) == (
        "active",
        True,
        False,
    )
    assert scheduled.next_charge() is None
    assert (resumed.cancel_at_period_end, resumed.status) == (False, "active")
    assert resumed.auto_renew is True  # as it was before the cancellation
    async with gateway.transaction() as billing:
        await billing.cancel_order(account_id, order.id, immediately=False)
        await billing.set_order_auto_renew(account_id, order.id, False)
        kept_off = await billing.resume_order(account_id, order.id)
        await billing.set_order_auto_renew(account_id, order.id, True)
        await billing.cancel_order(account_id, order.id, immediately=False)
        await billing.credit(account_id, 490, kind="topup")
        renewed = await billing.renew_order(account_id, order.id, 1)
    assert kept_off.auto_renew is False  # switched off while scheduled: stays off
    # Renewing drops the scheduled cancellation; auto-renew stays off as it was shown.
    assert (renewed.cancel_at_period_end, renewed.auto_renew) == (False, False)
    async with gateway.transaction() as billing:
        now_cancelled = await billing.cancel_order(account_id, order.id, immediately=True)
        with pytest.raises(InvalidState):
            await billing.cancel_order(account_id, order.id, immediately=True)
        with pytest.raises(InvalidState):
            await billing.renew_order(account_id, order.id, 1)
    assert now_cancelled.status == "cancelled" and now_cancelled.cancelled_at is not None
    assert await balance_and_ledger(gateway, account_id) == (4510, 4510)  # no refund


async def test_days_left_counts_a_started_day(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7041, balance=5000)
    async with gateway.transaction() as billing:
        order = await billing.place_order(account_id, VPS_1, 1)
    now = order.paid_until - timedelta(days=2, hours=1)
    assert order.days_left(now) == 3
    assert order.days_left(order.paid_until - timedelta(days=1)) == 1
    assert order.days_left(order.paid_until + timedelta(seconds=1)) == 0
    assert order.is_overdue(order.paid_until) and not order.is_overdue(now)


async def test_cart_save_get_complete_and_clear(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7050, balance=100)
    async with gateway.transaction() as billing:
        assert await billing.get_cart(account_id) is None
        await billing.save_cart(account_id, VPS_1, 1)
        cart = await billing.save_cart(account_id, VPS_2, 3)  # replaces the first
    assert (cart.tariff_name, cart.months, cart.price_minor, cart.product_type) == (
        "VPS 2",
        3,
        2881,
        "vps",
    )
    with pytest.raises(InsufficientFunds):
        async with gateway.transaction() as billing:
            await billing.complete_cart(account_id)
    async with gateway.transaction() as billing:
        assert await billing.get_cart(account_id) == cart  # kept for after the top-up
        await billing.credit(account_id, 3000, kind="topup")
    async with gateway.transaction() as billing:
        order = await billing.complete_cart(account_id)
        assert await billing.get_cart(account_id) is None
        with pytest.raises(NotFound):
            await billing.complete_cart(account_id)
    assert (order.tariff_name, order.period_months, order.status) == ("VPS 2", 3, "active")
    assert await balance_and_ledger(gateway, account_id) == (3100 - 2881,) * 2
    async with gateway.transaction() as billing:
        await billing.save_cart(account_id, VPS_1, 12)
        await billing.clear_cart(account_id)
        assert await billing.get_cart(account_id) is None
        with pytest.raises(ValidationFailed):
            await billing.save_cart(account_id, VPS_1, 5)


async def test_concurrent_cart_completion_creates_one_order(gateway: EmbeddedGateway) -> None:
    account_id = await new_account(gateway, 7051, balance=100000)
    async with gateway.transaction() as billing:
        await billing.save_cart(account_id, VPS_1, 1)
    outcomes: list[str] = []

    async def complete() -> None:
        try:
            async with gateway.transaction() as billing:
                await billing.complete_cart(account_id)
            outcomes.append("ok")
        except NotFound:
            outcomes.append("gone")

    await asyncio.gather(*(complete() for _ in range(10)))
    assert sorted(outcomes) == ["gone"] * 9 + ["ok"]
    assert await balance_and_ledger(gateway, account_id) == (100000 - 490,) * 2


async def test_concurrent_new_orders_get_distinct_addresses(gateway: EmbeddedGateway) -> None:
    accounts = [await new_account(gateway, 7060 + i, balance=1000) for i in range(10)]

    async def order(account_id: int) -> str | None:
        async with gateway.transaction() as billing:
            return (await billing.place_order(account_id, VPS_1, 1)).ip_address

    addresses = await asyncio.gather(*(order(a) for a in accounts))
    assert sorted(addresses) == [f"203.0.113.{n}" for n in range(10, 20)]  # type: ignore[type-var]


async def test_a_refused_order_leaves_the_transaction_usable_for_the_cart(
    gateway: EmbeddedGateway,
) -> None:
    """The new-order handler catches InsufficientFunds and saves the cart in the same update."""
    account_id = await new_account(gateway, 7070, balance=100)
    async with gateway.transaction() as billing:
        with pytest.raises(InsufficientFunds):
            await billing.place_order(account_id, VPS_2, 1, idempotency_key="no:7070:1")
        await billing.save_cart(account_id, VPS_2, 1)
    async with gateway.transaction() as billing:
        cart = await billing.get_cart(account_id)
        assert cart is not None and (cart.tariff_id, cart.months) == (VPS_2, 1)
        assert (await billing.list_orders(account_id)).total == 0
    assert await balance_and_ledger(gateway, account_id) == (100, 100)
