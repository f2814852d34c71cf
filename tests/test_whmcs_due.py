"""The alert jobs' due scans over WHMCS (the stand-in), and services/alerts.py on them."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from decimal import Decimal

import pytest
from sqlalchemy import func, select, update

import keyboards.alerts as alert_kb
from bot.factory import create_i18n
from services.alerts import AlertPolicy, scan_expiring, scan_low_balance
from services.billing import per_call
from services.embedded import models as m
from services.embedded.billing import EmbeddedBilling
from services.whmcs.gateway import WhmcsGateway
from tests.harness.whmcs import WhmcsStandIn
from tests.whmcs_fixtures import linked_account

NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
POLICY = AlertPolicy(quiet_start=None, quiet_end=None)
I18N = create_i18n("en")


async def _outbox_rows(gateway: WhmcsGateway) -> int:
    async with gateway.local.transaction(read_only=True) as billing:
        session = billing.session  # type: ignore[attr-defined]
        return int(await session.scalar(select(func.count()).select_from(m.OutboxMessage)) or 0)


async def _clients_with_services(
    gateway: WhmcsGateway, whmcs: WhmcsStandIn, count: int, due: date
) -> list[int]:
    product = whmcs.add_product("VPS 1", "5.00")
    accounts = []
    for index in range(count):
        client = whmcs.add_client("C", str(index), f"c{index}@example.com")
        whmcs.add_service(client, product, nextduedate=due)
        accounts.append((await linked_account(gateway, 600 + index, client)).id)
    return accounts


async def test_expiring_due_pages_over_linked_clients(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    accounts = await _clients_with_services(whmcs_gateway, whmcs, 5, date(2027, 3, 12))
    far = whmcs.add_client("Far", "Away", "far@example.com")
    whmcs.add_service(far, whmcs.add_product("VPS 2", "9.00"), nextduedate=date(2027, 6, 1))
    await linked_account(whmcs_gateway, 700, far)
    billing = per_call(whmcs_gateway)
    seen: list[int] = []
    after = 0
    while True:
        page = await billing.expiring_due(
            NOW, (7, 3, 1), timedelta(days=3), after_account_id=after, limit=2
        )
        seen += [due.recipient.account_id for due in page]
        assert all(due.orders[0].stage == 3 for due in page)
        if len(page) < 2:
            break
        after = page[-1].recipient.account_id
    assert seen == accounts


async def test_low_balance_is_told_once_per_crossing_and_rearmed(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    client = whmcs.add_client("Alice", "Smith", "a@example.com", credit=Decimal("1.00"))
    account = await linked_account(whmcs_gateway, 501, client)
    await per_call(whmcs_gateway.local).set_low_balance_threshold(
        account.id, 500, whmcs_gateway.local.base_currency
    )
    billing = per_call(whmcs_gateway)
    first = await scan_low_balance(whmcs_gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    second = await scan_low_balance(whmcs_gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    assert (first.alerts, second.alerts) == (1, 0)
    client.credit = Decimal("10.00")
    assert await billing.rearm_low_balance() == 1
    client.credit = Decimal("2.00")
    whmcs_gateway.core._client_changed(client.id)  # type: ignore[attr-defined]
    third = await scan_low_balance(whmcs_gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    assert third.alerts == 1 and await _outbox_rows(whmcs_gateway) == 2


async def test_scan_expiring_queues_one_message_per_account_once(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    accounts = await _clients_with_services(whmcs_gateway, whmcs, 3, date(2027, 3, 11))
    policy = AlertPolicy(quiet_start=None, quiet_end=None, batch_size=2)
    first = await scan_expiring(whmcs_gateway, I18N, policy, NOW, keyboards=alert_kb)
    assert first.alerts == len(accounts) and await _outbox_rows(whmcs_gateway) == 3
    second = await scan_expiring(whmcs_gateway, I18N, policy, NOW, keyboards=alert_kb)
    assert second.alerts == 0 and await _outbox_rows(whmcs_gateway) == 3


async def _set_timezone(gateway: WhmcsGateway, account_id: int, zone: str) -> None:
    async with gateway.local.transaction() as billing:
        session = billing.session  # type: ignore[attr-defined]
        await session.execute(
            update(m.Account).where(m.Account.id == account_id).values(timezone=zone)
        )


async def _outbox_texts(gateway: WhmcsGateway) -> list[str]:
    async with gateway.local.transaction(read_only=True) as billing:
        session = billing.session  # type: ignore[attr-defined]
        rows = await session.scalars(select(m.OutboxMessage).order_by(m.OutboxMessage.id))
        return [str(row.payload.get("text")) for row in rows]


async def test_due_alerts_are_dated_in_the_accounts_own_timezone(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    # Due 2027-03-12 (00:00 UTC): still 11 March in New York, where this customer lives.
    [in_new_york, in_utc] = await _clients_with_services(whmcs_gateway, whmcs, 2, date(2027, 3, 12))
    await _set_timezone(whmcs_gateway, in_new_york, "America/New_York")
    page = await per_call(whmcs_gateway).expiring_due(NOW, (7, 3, 1), timedelta(days=3))
    assert {due.recipient.account_id: due.recipient.timezone for due in page} == {
        in_new_york: "America/New_York",
        in_utc: None,
    }
    await scan_expiring(whmcs_gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    new_york, utc = await _outbox_texts(whmcs_gateway)
    assert "Mar 11, 2027" in new_york and "Mar 12" not in new_york
    assert "Mar 12, 2027" in utc


class Crash(Exception):
    """The process dies between the low-balance flag and the alert's outbox row."""


async def test_a_crash_before_the_outbox_row_loses_no_low_balance_alert(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn, monkeypatch: pytest.MonkeyPatch
) -> None:
    client = whmcs.add_client("Alice", "Smith", "a@example.com", credit=Decimal("1.00"))
    account = await linked_account(whmcs_gateway, 501, client)
    await per_call(whmcs_gateway.local).set_low_balance_threshold(
        account.id, 500, whmcs_gateway.local.base_currency
    )

    async def crash(self: object, messages: object) -> int:
        raise Crash()

    with monkeypatch.context() as patched:
        patched.setattr(EmbeddedBilling, "enqueue_messages", crash)
        with pytest.raises(Crash):
            await scan_low_balance(whmcs_gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    assert await _outbox_rows(whmcs_gateway) == 0
    # The flag went with the lost row: the next run tells this crossing, once.
    again = await scan_low_balance(whmcs_gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    assert again.alerts == 1 and await _outbox_rows(whmcs_gateway) == 1
    last = await scan_low_balance(whmcs_gateway, I18N, POLICY, NOW, keyboards=alert_kb)
    assert last.alerts == 0 and await _outbox_rows(whmcs_gateway) == 1


async def test_the_low_balance_flag_is_written_on_the_blocks_local_transaction(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    client = whmcs.add_client("Alice", "Smith", "a@example.com", credit=Decimal("1.00"))
    account = await linked_account(whmcs_gateway, 501, client)
    await per_call(whmcs_gateway.local).set_low_balance_threshold(
        account.id, 500, whmcs_gateway.local.base_currency
    )
    with pytest.raises(Crash):
        async with whmcs_gateway.transaction() as billing:
            [due] = await billing.low_balance_due()
            assert await billing.mark_low_balance_alerted([account.id]) == [account.id]
            raise Crash()  # rolled back: the flag with it
    async with whmcs_gateway.transaction() as billing:
        [due] = await billing.low_balance_due()
        assert due.crossing == 1
        assert await billing.mark_low_balance_alerted([account.id]) == [account.id]
    assert await per_call(whmcs_gateway).low_balance_due() == []


@pytest.mark.parametrize("confirmed", [True, False], ids=["confirmed", "unconfirmed"])
async def test_a_client_who_blocked_the_bot_is_due_only_by_a_confirmed_email(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn, confirmed: bool
) -> None:
    """With `emailable` (SMTP set) a client who blocked the bot is still told, by e-mail, when
    the address was confirmed in the bot; without it, or unconfirmed, not at all."""
    client = whmcs.add_client("Alice", "Smith", "a@example.com", credit=Decimal("1.00"))
    whmcs.add_service(client, whmcs.add_product("VPS 1", "5.00"), nextduedate=date(2027, 3, 12))
    account = await linked_account(whmcs_gateway, 511, client)
    local = per_call(whmcs_gateway.local)
    await local.set_low_balance_threshold(account.id, 500, whmcs_gateway.local.base_currency)
    if confirmed:
        code = await per_call(whmcs_gateway).start_email_confirmation(account.id)
        assert (
            await per_call(whmcs_gateway).confirm_code(account.id, "email", code)
        ).status == "ok"
    await local.set_chat_reachable(511, False)
    billing = per_call(whmcs_gateway)
    grace = timedelta(days=3)
    assert await billing.low_balance_due() == []
    assert await billing.expiring_due(NOW, (7, 3, 1), grace) == []
    low = await billing.low_balance_due(emailable=True)
    expiring = await billing.expiring_due(NOW, (7, 3, 1), grace, emailable=True)
    expected = [account.id] if confirmed else []
    assert [due.recipient.account_id for due in low] == expected
    assert [due.recipient.account_id for due in expiring] == expected
