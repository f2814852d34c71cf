"""The alert jobs with a fixed clock, on SQLite and on PostgreSQL: low balance, expiry stages,
grouping, quiet hours, auto-renewal (success, failure, overlapping runs) and overdue orders.
Jobs write to the outbox; these tests read what they queued."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from sqlalchemy import func, select, update

import keyboards.alerts as alert_kb
from bot.config import Settings
from bot.factory import create_i18n
from bot.scheduler import alert_policy, parse_quiet_hours
from services.alerts import (
    AlertPolicy,
    deliver_at,
    handle_overdue,
    run_alert_jobs,
    run_auto_renewal,
    scan_expiring,
    scan_low_balance,
)
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.embedded.orders import add_months
from tests.harness.telegram import TOKEN

# A Wednesday noon, in the future of the real clock (renewals compare with it).
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
POLICY = AlertPolicy()  # stages 7/3/1, 3 days grace, 24 h lead, quiet 22:00-09:00, UTC
VPS_2 = 5  # demo catalogue: VPS 2, 990 per month
DS_START = 1  # DS Start, 7900 per month
I18N = create_i18n("en")


async def new_account(
    gateway: EmbeddedGateway,
    telegram_id: int,
    balance: int = 0,
    *,
    threshold: int | None = None,
    timezone: str | None = None,
    language: str | None = None,
) -> int:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(telegram_id, telegram_id)
        if balance:
            await billing.credit(account.id, balance, kind="topup", idempotency_key=None)
        await billing.session.execute(
            update(m.Account)
            .where(m.Account.id == account.id)
            .values(low_balance_threshold_minor=threshold, timezone=timezone, language=language)
        )
        return account.id


async def add_order(
    gateway: EmbeddedGateway,
    account_id: int,
    paid_until: datetime,
    *,
    tariff_id: int = VPS_2,
    price: int = 990,
    status: str = "active",
    auto_renew: bool = False,
    ip: str | None = None,
    cancel_at_period_end: bool = False,
) -> int:
    async with gateway.transaction() as billing:
        row = m.Order(
            account_id=account_id,
            tariff_id=tariff_id,
            status=status,
            ip_address=ip,
            period_months=1,
            price_minor=price,
            created_at=paid_until - timedelta(days=30),
            paid_until=paid_until,
            auto_renew=auto_renew,
            cancel_at_period_end=cancel_at_period_end,
        )
        billing.session.add(row)
        await billing.session.flush()
        return row.id


async def outbox(gateway: EmbeddedGateway) -> list[m.OutboxMessage]:
    async with gateway.transaction() as billing:
        rows = await billing.session.scalars(select(m.OutboxMessage).order_by(m.OutboxMessage.id))
        return list(rows)


async def order_row(gateway: EmbeddedGateway, order_id: int) -> m.Order:
    async with gateway.transaction() as billing:
        row = await billing.session.get(m.Order, order_id)
        assert row is not None
        return row


def buttons(row: m.OutboxMessage) -> list[tuple[str, str]]:
    markup: dict[str, Any] = row.payload.get("reply_markup") or {}
    return [(b["text"], b["callback_data"]) for line in markup["inline_keyboard"] for b in line]


async def low(gateway: EmbeddedGateway, now: datetime = NOW) -> Any:
    return await scan_low_balance(gateway, I18N, POLICY, now, keyboards=alert_kb)


async def expiring(gateway: EmbeddedGateway, now: datetime, policy: AlertPolicy = POLICY) -> Any:
    return await scan_expiring(gateway, I18N, policy, now, keyboards=alert_kb)


async def renew(gateway: EmbeddedGateway, now: datetime = NOW) -> Any:
    return await run_auto_renewal(gateway, I18N, POLICY, now, keyboards=alert_kb)


# ---- settings and quiet hours ------------------------------------------------------------------
def test_policy_from_settings() -> None:
    settings = Settings(
        bot_token=TOKEN,
        _env_file=None,  # type: ignore[call-arg]
        expiry_alert_stages="1,14,3",  # type: ignore[arg-type]
        overdue_grace_days=5,
        auto_renew_lead_hours=48,
        quiet_hours="23:30-07:15",
        default_timezone="Europe/Moscow",
    )
    policy = alert_policy(settings)
    assert policy.stages == (14, 3, 1)
    assert policy.grace == timedelta(days=5)
    assert policy.renew_lead == timedelta(hours=48)
    assert parse_quiet_hours("23:30-07:15") == (policy.quiet_start, policy.quiet_end)
    assert policy.default_timezone == "Europe/Moscow"
    with pytest.raises(ValueError):
        Settings(bot_token=TOKEN, _env_file=None, quiet_hours="25:00-07:00")  # type: ignore[call-arg]


def test_deliver_at_holds_non_urgent_alerts_until_the_end_of_quiet_hours() -> None:
    # 20:00 UTC is 23:00 in Moscow (UTC+3): quiet until 09:00 Moscow = 06:00 UTC next day.
    evening = datetime(2027, 3, 10, 20, 0, tzinfo=UTC)
    assert deliver_at(evening, "Europe/Moscow", POLICY, urgent=False) == datetime(
        2027, 3, 11, 6, 0, tzinfo=UTC
    )
    assert deliver_at(evening, "Europe/Moscow", POLICY, urgent=True) == evening
    # After midnight, before 09:00 local: the same morning.
    night = datetime(2027, 3, 11, 1, 0, tzinfo=UTC)  # 04:00 Moscow
    assert deliver_at(night, "Europe/Moscow", POLICY, urgent=False) == datetime(
        2027, 3, 11, 6, 0, tzinfo=UTC
    )
    # Daytime passes through; no time zone of its own -> the default (UTC): 20:00 is not quiet.
    assert deliver_at(evening, None, POLICY, urgent=False) == evening
    assert deliver_at(NOW, "Europe/Moscow", POLICY, urgent=False) == NOW
    no_quiet = AlertPolicy(quiet_start=None, quiet_end=None)
    assert deliver_at(evening, "Europe/Moscow", no_quiet, urgent=False) == evening
    # A broken time zone falls back to the default instead of failing the scan.
    assert deliver_at(evening, "Mars/Olympus", POLICY, urgent=False) == evening


# ---- low balance -----------------------------------------------------------------------------
async def test_low_balance_once_per_crossing_and_rearmed_only_after_recovery(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8101, balance=500, threshold=1000)
    await add_order(gateway, account, NOW + timedelta(days=5), auto_renew=True, ip="198.51.100.7")
    await add_order(gateway, account, NOW + timedelta(days=9), tariff_id=DS_START, price=7900)
    quiet = await new_account(gateway, 8102, balance=5000, threshold=1000)  # above: no alert
    assert quiet

    first = await low(gateway)
    assert first.alerts == 1
    [row] = await outbox(gateway)
    assert row.chat_id == 8101 and row.method == "sendMessage" and row.status == "pending"
    assert row.payload["text"] == (
        "⚠️ <b>Low balance</b>\n"
        "Your balance is <b>€5.00</b>, below the €10.00 you asked to be warned about.\n\n"
        "Next charges:\n"
        "• Mar 15, 2027: #1 VPS 2 (198.51.100.7) — €9.90\n\n"
        "Top up the balance to keep your services running."
    )
    # Only the auto-renewing order is an upcoming charge: 990 - 500 = 490 to top up.
    assert buttons(row) == [("💳 Top up", "tu:490"), ("📦 Orders", "menu:orders")]
    assert row.not_before == NOW  # noon is not quiet

    # Repeated scans: nothing new while the balance stays below.
    assert (await low(gateway)).alerts == 0
    assert (await low(gateway, NOW + timedelta(hours=1))).alerts == 0
    assert len(await outbox(gateway)) == 1

    # Back above the threshold: re-armed, no alert; below again: one new alert.
    async with gateway.transaction() as billing:
        await billing.credit(account, 700, kind="topup")  # 1200
    report = await low(gateway)
    assert (report.rearmed, report.alerts) == (1, 0)
    async with gateway.transaction() as billing:
        await billing.debit(account, 1100, kind="adjustment")  # 100
    assert (await low(gateway)).alerts == 1
    rows = await outbox(gateway)
    assert len(rows) == 2
    assert "Your balance is <b>€1.00</b>" in rows[1].payload["text"]
    assert rows[0].idempotency_key != rows[1].idempotency_key


async def test_low_balance_exactly_at_threshold_is_not_low_and_unreachable_chats_wait(
    gateway: EmbeddedGateway,
) -> None:
    await new_account(gateway, 8111, balance=1000, threshold=1000)
    blocked = await new_account(gateway, 8112, balance=10, threshold=1000)
    async with gateway.transaction() as billing:
        await billing.set_chat_reachable(8112, False)
    assert (await low(gateway)).alerts == 0
    # The user writes again: reachable, the crossing is still untold -> alerted now.
    async with gateway.transaction() as billing:
        await billing.get_or_create_account(8112, 8112)
    assert (await low(gateway)).alerts == 1
    assert [r.chat_id for r in await outbox(gateway)] == [8112]
    assert blocked


async def test_low_balance_in_russian_for_a_russian_account(gateway: EmbeddedGateway) -> None:
    await new_account(gateway, 8121, balance=500, threshold=1000, language="ru")
    await low(gateway)
    [row] = await outbox(gateway)
    assert row.payload["text"].startswith("⚠️ <b>Низкий баланс</b>\n")
    assert "5,00\xa0€" in row.payload["text"]
    assert buttons(row)[0] == ("💳 Пополнить", "tu:0")


# ---- expiring orders -------------------------------------------------------------------------
async def test_expiry_stages_each_once_and_orders_of_one_account_grouped(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8201, balance=0)
    a = await add_order(gateway, account, NOW + timedelta(days=2, hours=6), ip="198.51.100.1")
    b = await add_order(
        gateway,
        account,
        NOW + timedelta(days=2, hours=9),
        tariff_id=DS_START,
        price=7900,
        auto_renew=True,
    )
    far = await add_order(gateway, account, NOW + timedelta(days=20))
    other = await new_account(gateway, 8202)
    c = await add_order(gateway, other, NOW + timedelta(days=6))

    report = await expiring(gateway, NOW)
    assert (report.alerts, report.orders) == (2, 3)
    rows = await outbox(gateway)
    assert [r.chat_id for r in rows] == [8201, 8202]
    assert rows[0].payload["text"] == (
        "⏳ <b>Your orders expire soon</b>\n"
        "• #1 VPS 2 (198.51.100.1): paid until Mar 12, 2027, 3 days left\n"
        "• #2 DS Start: paid until Mar 12, 2027, 3 days left\n"
        # the balance (0) cannot pay it: the alert says so instead of "will charge"
        "  auto-renewal needs €79.00: top up €79.00 by Mar 12, 2027, or it will not renew\n\n"
        "Renew in time to keep your services running."
    )
    assert buttons(rows[0]) == [
        ("🔄 Renew #1", f"od:renew:{a}"),
        ("🔄 Renew #2", f"od:renew:{b}"),
        ("💳 Top up", "tu:8890"),
    ]
    assert (
        rows[1]
        .payload["text"]
        .startswith(
            "⏳ <b>Your order expires soon</b>\n• #4 VPS 2: paid until Mar 16, 2027, 6 days left\n"
        )
    )
    assert far and c

    # Repeated scans in the same stage: nothing new.
    assert (await expiring(gateway, NOW)).alerts == 0
    assert (await expiring(gateway, NOW + timedelta(hours=12))).alerts == 0
    # The 1-day stage: one grouped message again; then expiry day (stage 0).
    stage1 = await expiring(gateway, NOW + timedelta(days=1, hours=12))
    assert (stage1.alerts, stage1.orders) == (1, 2)
    assert (await expiring(gateway, NOW + timedelta(days=1, hours=13))).alerts == 0
    expired = await expiring(gateway, NOW + timedelta(days=2, hours=10))
    assert (expired.alerts, expired.orders) == (1, 2)
    rows = await outbox(gateway)
    assert rows[-1].payload["text"] == (
        "⛔ <b>Your orders have expired</b>\n"
        "• #1 VPS 2 (198.51.100.1): expired on Mar 12, 2027, will be suspended on Mar 15, 2027\n"
        "• #2 DS Start: expired on Mar 12, 2027, will be suspended on Mar 15, 2027\n\n"
        "Renew in time to keep your services running."
    )
    assert (await expiring(gateway, NOW + timedelta(days=2, hours=11))).alerts == 0
    assert len(rows) == 4  # 2 first stage + stage 1 + expiry


async def test_expiry_says_which_auto_renewals_the_balance_covers(
    gateway: EmbeddedGateway,
) -> None:
    """The balance is spent on the renewals in paid-until order, as the renewal job spends it:
    the first is covered, the second lacks what is left after it — before the charge date."""
    account = await new_account(gateway, 8211, balance=8000)
    await add_order(gateway, account, NOW + timedelta(days=2, hours=6), price=7900, auto_renew=True)
    await add_order(gateway, account, NOW + timedelta(days=2, hours=9), auto_renew=True)
    await expiring(gateway, NOW)
    [row] = await outbox(gateway)
    assert row.payload["text"] == (
        "⏳ <b>Your orders expire soon</b>\n"
        "• #1 VPS 2: paid until Mar 12, 2027, 3 days left\n"
        "  auto-renewal will charge €79.00\n"
        "• #2 VPS 2: paid until Mar 12, 2027, 3 days left\n"
        "  auto-renewal needs €9.90: top up €8.90 by Mar 12, 2027, or it will not renew\n\n"
        "Renew in time to keep your services running."
    )


async def test_a_late_scan_tells_only_the_current_stage_and_a_renewal_starts_a_new_cycle(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8211)
    order = await add_order(gateway, account, NOW + timedelta(hours=20))
    report = await expiring(gateway, NOW)  # stages 7 and 3 were never seen: only stage 1
    assert report.alerts == 1
    async with gateway.transaction() as billing:
        marks = list(await billing.session.scalars(select(m.AlertMark.stage)))
    assert marks == [1]
    # Renewed for a month: the next period's stages alert again.
    async with gateway.transaction() as billing:
        await billing.session.execute(
            update(m.Order)
            .where(m.Order.id == order)
            .values(paid_until=add_months(NOW + timedelta(hours=20), 1))
        )
    later = NOW + timedelta(days=29)  # Apr 8 noon: 2 days 20 hours before Apr 11 08:00
    assert (await expiring(gateway, later)).alerts == 1
    assert "3 days left" in (await outbox(gateway))[-1].payload["text"]


async def test_cancelled_at_period_end_and_suspended_orders_get_no_expiry_alerts(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8221)
    await add_order(gateway, account, NOW + timedelta(days=2), cancel_at_period_end=True)
    await add_order(gateway, account, NOW - timedelta(days=5), status="suspended")
    await add_order(gateway, account, NOW - timedelta(days=1), status="cancelled")
    assert (await expiring(gateway, NOW)).alerts == 0


async def test_quiet_hours_hold_early_stages_but_not_expiry_day_alerts(
    gateway: EmbeddedGateway,
) -> None:
    evening = datetime(2027, 3, 10, 20, 0, tzinfo=UTC)  # 23:00 in Moscow
    early = await new_account(gateway, 8231, timezone="Europe/Moscow")
    await add_order(gateway, early, evening + timedelta(days=3))
    urgent = await new_account(gateway, 8232, timezone="Europe/Moscow")
    await add_order(gateway, urgent, evening + timedelta(hours=10))  # expires tomorrow morning
    gone = await new_account(gateway, 8233, timezone="Europe/Moscow")
    await add_order(gateway, gone, evening - timedelta(hours=1))  # expired an hour ago

    assert (await expiring(gateway, evening)).alerts == 3
    by_chat = {r.chat_id: r for r in await outbox(gateway)}
    assert by_chat[8231].not_before == datetime(2027, 3, 11, 6, 0, tzinfo=UTC)  # 09:00 Moscow
    assert by_chat[8232].not_before == evening
    assert by_chat[8233].not_before == evening
    # The sender does not take the held one before its time.
    async with gateway.transaction() as billing:
        claimed = await billing.claim_outbox("t", evening, timedelta(seconds=60))
    assert sorted(i.chat_id for i in claimed) == [8232, 8233]
    async with gateway.transaction() as billing:
        for item in claimed:
            await billing.mark_outbox_sent(item.id, "t", evening)
    async with gateway.transaction() as billing:
        morning = await billing.claim_outbox(
            "t", datetime(2027, 3, 11, 6, 0, tzinfo=UTC), timedelta(seconds=60)
        )
    assert [i.chat_id for i in morning] == [8231]


# ---- auto-renewal ----------------------------------------------------------------------------
async def test_auto_renewal_renews_before_expiry_and_tells_once(gateway: EmbeddedGateway) -> None:
    account = await new_account(gateway, 8301, balance=2000)
    paid_until = NOW + timedelta(hours=12)
    order = await add_order(gateway, account, paid_until, auto_renew=True, ip="198.51.100.9")
    not_yet = await add_order(gateway, account, NOW + timedelta(days=3), auto_renew=True)
    manual = await add_order(gateway, account, NOW + timedelta(hours=5))  # auto-renew off

    report = await renew(gateway)
    assert report.renewed == [order] and report.failed == []
    row = await order_row(gateway, order)
    assert row.paid_until == add_months(paid_until, 1) and row.status == "active"
    assert (await order_row(gateway, not_yet)).paid_until == NOW + timedelta(days=3)
    assert (await order_row(gateway, manual)).paid_until == NOW + timedelta(hours=5)
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account)).balance_minor == 1010
        assert await billing.ledger_sum(account) == 1010
    [message] = await outbox(gateway)
    assert message.payload["text"] == (
        "✅ <b>Auto-renewal</b>\n"
        "• #1 VPS 2 (198.51.100.9): renewed until Apr 11, 2027, €9.90 charged"
    )
    assert "reply_markup" not in message.payload

    # Running again (or a retry after a timeout): no second charge, no second message.
    assert (await renew(gateway)).renewed == []
    assert (await renew(gateway, NOW + timedelta(hours=1))).renewed == []
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account)).balance_minor == 1010
    assert len(await outbox(gateway)) == 1


async def test_auto_renewal_failure_is_told_once_and_a_top_up_renews(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8311, balance=300)
    paid_until = NOW + timedelta(hours=6)
    order = await add_order(gateway, account, paid_until, auto_renew=True)

    report = await renew(gateway)
    assert report.failed == [order] and report.renewed == []
    [message] = await outbox(gateway)
    assert message.payload["text"] == (
        "❌ <b>Auto-renewal failed</b>\n"
        "• #1 VPS 2, paid until Mar 10, 2027: not enough money on the balance, "
        "€6.90 is missing\n\n"
        "Top up the balance and the order will be renewed automatically."
    )
    assert buttons(message) == [
        (f"🔄 Renew #{order}", f"od:renew:{order}"),
        ("💳 Top up", "tu:690"),
    ]
    assert message.not_before == NOW  # urgent
    # The next runs retry quietly.
    assert (await renew(gateway, NOW + timedelta(minutes=5))).failed == []
    assert len(await outbox(gateway)) == 1
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account)).balance_minor == 300

    async with gateway.transaction() as billing:
        await billing.credit(account, 1000, kind="topup")
    assert (await renew(gateway, NOW + timedelta(minutes=10))).renewed == [order]
    assert (await order_row(gateway, order)).paid_until == add_months(paid_until, 1)
    rows = await outbox(gateway)
    assert len(rows) == 2 and rows[1].payload["text"].startswith("✅ <b>Auto-renewal</b>")
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account)).balance_minor == 310
        assert await billing.ledger_sum(account) == 310


async def test_two_overlapping_renewal_runs_charge_once(gateway: EmbeddedGateway) -> None:
    accounts = [await new_account(gateway, 8320 + i, balance=5000) for i in range(3)]
    orders = [
        await add_order(gateway, a, NOW + timedelta(hours=3), auto_renew=True) for a in accounts
    ]
    first, second = await asyncio.gather(renew(gateway), renew(gateway))
    assert sorted(first.renewed + second.renewed) == sorted(orders)
    for account, order in zip(accounts, orders, strict=True):
        async with gateway.transaction() as billing:
            assert (await billing.get_account(account)).balance_minor == 5000 - 990
            assert await billing.ledger_sum(account) == 5000 - 990
        assert (await order_row(gateway, order)).paid_until == add_months(
            NOW + timedelta(hours=3), 1
        )
    assert len(await outbox(gateway)) == 3
    async with gateway.transaction() as billing:
        renewals = await billing.session.scalar(
            select(func.count()).where(m.LedgerEntry.kind == "renewal")
        )
    assert renewals == 3


async def test_auto_renewal_skips_an_order_renewed_by_hand_meanwhile(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8331, balance=5000)
    paid_until = NOW + timedelta(hours=3)
    order = await add_order(gateway, account, paid_until, auto_renew=True)
    async with gateway.transaction() as billing:
        due = await billing.renewals_due(NOW, timedelta(hours=24))
        await billing.renew_order(account, order, 1)  # the user presses "Renew" first
    assert [o.order_id for o in due[0].orders] == [order]
    assert (await renew(gateway)).renewed == []
    async with gateway.transaction() as billing:
        assert (await billing.get_account(account)).balance_minor == 4010


# ---- overdue ---------------------------------------------------------------------------------
async def test_overdue_orders_expire_then_are_suspended_after_the_grace_period(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8401)
    order = await add_order(gateway, account, NOW - timedelta(hours=1))
    leaving = await add_order(gateway, account, NOW - timedelta(hours=2), cancel_at_period_end=True)
    fine = await add_order(gateway, account, NOW + timedelta(days=10))

    report = await handle_overdue(gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    assert (report.expired, report.suspended) == (2, [])
    assert (await order_row(gateway, order)).status == "expired"
    assert (await order_row(gateway, leaving)).status == "cancelled"
    assert (await order_row(gateway, fine)).status == "active"
    assert await outbox(gateway) == []  # the expiry alert (stage 0) tells the customer
    assert (await expiring(gateway, NOW)).orders == 1

    # Within the grace period nothing more happens; after it, suspended and told once.
    later = NOW + timedelta(days=2)
    assert (await handle_overdue(gateway, I18N, POLICY, later, keyboards=alert_kb)).suspended == []
    after = NOW + timedelta(days=3)
    report = await handle_overdue(gateway, I18N, POLICY, after, keyboards=alert_kb)
    assert report.suspended == [order]
    row = await order_row(gateway, order)
    assert row.status == "suspended" and row.suspended_at == after
    message = (await outbox(gateway))[-1]
    assert message.payload["text"] == (
        "🚫 <b>Your order is suspended</b>\n"
        "• #1 VPS 2: expired on Mar 10, 2027\n\n"
        "It was not renewed within 3 days after it expired. Renew it to resume the service."
    )
    assert buttons(message) == [(f"🔄 Renew #{order}", f"od:renew:{order}"), ("💳 Top up", "tu:0")]
    again = await handle_overdue(gateway, I18N, POLICY, after, keyboards=alert_kb)
    assert again.suspended == []
    assert len(await outbox(gateway)) == 2


async def test_one_tick_runs_every_job_in_order(gateway: EmbeddedGateway) -> None:
    account = await new_account(gateway, 8501, balance=1200, threshold=1000)
    await add_order(gateway, account, NOW + timedelta(hours=2), auto_renew=True)
    reports = await run_alert_jobs(gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    assert list(reports) == ["renewal", "overdue", "expiring", "low_balance"]
    # Renewed (1200 - 990 = 210): no expiry alert for it, but the balance is now low.
    assert reports["renewal"].renewed and reports["expiring"].alerts == 0
    assert reports["low_balance"].alerts == 1
    texts = [r.payload["text"].split("\n")[0] for r in await outbox(gateway)]
    assert texts == ["✅ <b>Auto-renewal</b>", "⚠️ <b>Low balance</b>"]


# ---- scheduler wiring ------------------------------------------------------------------------
async def test_leased_jobs_run_once_across_instances(gateway: EmbeddedGateway) -> None:
    from bot.scheduler import leased

    runs: list[tuple[str, datetime]] = []
    clock = {"now": NOW}

    def job(name: str) -> Any:
        async def run(now: datetime) -> None:
            runs.append((name, now))

        return run

    one = leased(gateway, "alerts", "one", 300, job("one"), clock=lambda: clock["now"])
    two = leased(gateway, "alerts", "two", 300, job("two"), clock=lambda: clock["now"])
    assert sorted(await asyncio.gather(one(), two())) == [False, True]
    assert len(runs) == 1
    clock["now"] = NOW + timedelta(seconds=100)
    assert (await one(), await two()) == (runs[0][0] == "one", runs[0][0] == "two")
    clock["now"] = NOW + timedelta(seconds=400)  # the holder died: the lease expired
    assert await two() is True
    assert [r[1] for r in runs][-1] == NOW + timedelta(seconds=400)


def test_add_jobs_registers_every_job_with_intervals_from_settings(sqlite_url: str) -> None:
    from bot.factory import create_bot, create_gateway
    from bot.scheduler import add_jobs, create_scheduler
    from tests.conftest import make_settings

    settings = make_settings(
        sqlite_url, alert_interval_seconds=120, sender_interval_seconds=2, rates_interval_seconds=60
    )
    scheduler = create_scheduler(settings)
    jobs = add_jobs(scheduler, settings, create_gateway(settings), create_bot(settings), I18N)
    intervals = {job.id: job.trigger.interval.total_seconds() for job in scheduler.get_jobs()}
    assert intervals == {
        "alerts": 120,
        "rates": 60,
        "ticket_reminders": settings.reminder_interval_seconds,
        "outbox": 2,
    }
    assert jobs.sender.limiter.limits.global_per_second == 30


async def test_shutdown_waits_for_running_jobs() -> None:
    from bot.scheduler import RunningJobs

    running = RunningJobs()
    finished: list[bool] = []

    async def job() -> None:
        await asyncio.sleep(0.05)
        finished.append(True)

    task = asyncio.create_task(running.track(job)())
    await asyncio.sleep(0)
    assert running.tasks == {task}
    await running.wait(5)
    assert finished == [True] and running.tasks == set()


async def test_renewals_of_one_account_in_one_message_top_up_covers_them_all(
    gateway: EmbeddedGateway,
) -> None:
    account = await new_account(gateway, 8341, balance=1300)
    first = await add_order(gateway, account, NOW + timedelta(hours=2), auto_renew=True)
    second = await add_order(gateway, account, NOW + timedelta(hours=3), auto_renew=True)
    third = await add_order(gateway, account, NOW + timedelta(hours=4), auto_renew=True)
    report = await renew(gateway)
    assert report.renewed == [first] and report.failed == [second, third]
    [message] = await outbox(gateway)
    assert message.payload["text"] == (
        "✅ <b>Auto-renewal</b>\n"
        "• #1 VPS 2: renewed until Apr 10, 2027, €9.90 charged\n\n"
        "❌ <b>Auto-renewal failed</b>\n"
        "• #2 VPS 2, paid until Mar 10, 2027: not enough money on the balance, "
        "€6.80 is missing\n"
        "• #3 VPS 2, paid until Mar 10, 2027: not enough money on the balance, "
        "€6.80 is missing\n\n"
        "Top up the balance and the order will be renewed automatically."
    )
    # 310 left; both renewals need 1980: the button tops up the 1670 they miss together.
    assert buttons(message) == [
        (f"🔄 Renew #{second}", f"od:renew:{second}"),
        (f"🔄 Renew #{third}", f"od:renew:{third}"),
        ("💳 Top up", "tu:1670"),
    ]
