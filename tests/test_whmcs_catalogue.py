"""The WHMCS catalogue in each customer's own WHMCS currency, and the start-up check of
DEFAULT_CURRENCY against WHMCS's currencies (GetCurrencies)."""

from __future__ import annotations

import logging
from decimal import Decimal

import pytest

from services.billing import per_call
from services.whmcs.gateway import WhmcsGateway
from tests.harness.driver import BotDriver
from tests.harness.telegram import Call
from tests.harness.whmcs import Client, Fault, Product, WhmcsStandIn
from tests.whmcs_fixtures import linked_account

EUR, USD = 2, 1  # the stand-in's WHMCS currency ids


def two_currency_catalogue(whmcs: WhmcsStandIn) -> tuple[Product, Product]:
    """A VPS priced in both currencies (not at the exchange rate: WHMCS lets each price be
    set on its own), and a server sold in EUR only."""
    vps = whmcs.add_product("VPS 1", "5.00", "EUR", annually="50.00")
    whmcs.add_pricing(vps, "USD", "6.00", annually="66.00")
    server = whmcs.add_product("DS 1", "80.00", "EUR")
    server.type = "server"
    return vps, server


def dollar_client(whmcs: WhmcsStandIn, credit: str = "0") -> Client:
    return whmcs.add_client(
        "Dan", "Dollar", "dan@example.com", currency=USD, credit=Decimal(credit)
    )


async def test_the_catalogue_follows_the_linked_clients_currency(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    assert whmcs_gateway.base_currency == "EUR"  # DEFAULT_CURRENCY of the fixture
    vps, server = two_currency_catalogue(whmcs)
    account = await linked_account(whmcs_gateway, 601, dollar_client(whmcs))
    billing = per_call(whmcs_gateway)

    [tariff] = await billing.list_tariffs(account_id=account.id)
    assert (tariff.id, [(p.months, p.price_minor) for p in tariff.prices]) == (
        vps.pid,
        [(1, 600), (12, 6600)],
    )
    assert await billing.list_product_types(account_id=account.id) == ["hostingaccount"]
    assert (await billing.get_tariff(vps.pid, account_id=account.id)).price_for(12) == 6600
    # The quote, and so the order, is in the same currency as the list it was chosen from.
    quote = await billing.quote_new_order(account.id, vps.pid, 12)
    assert (quote.currency, quote.amount_minor) == ("USD", tariff.price_for(12))

    # Without an account: the base currency, DEFAULT_CURRENCY.
    assert [t.id for t in await billing.list_tariffs()] == [vps.pid, server.pid]
    assert (await billing.get_tariff(vps.pid)).price_for(1) == 500


async def test_an_unlinked_account_sees_the_base_currency_catalogue(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    vps, _ = two_currency_catalogue(whmcs)
    billing = per_call(whmcs_gateway)
    account, _ = await billing.get_or_create_account(602, 602, name="Newcomer")
    tariffs = await billing.list_tariffs("hostingaccount", account_id=account.id)
    assert [(t.id, t.price_for(1)) for t in tariffs] == [(vps.pid, 500)]


def edited(calls: list[Call]) -> Call:
    return next(c for c in calls if c.method == "editMessageText" and c.error is None)


async def test_the_new_order_screens_show_and_charge_the_clients_currency(
    whmcs_driver: BotDriver, whmcs: WhmcsStandIn
) -> None:
    vps, _ = two_currency_catalogue(whmcs)
    client = dollar_client(whmcs, credit="10.00")
    await linked_account(whmcs_driver.gateway, 603, client)  # type: ignore[arg-type]
    user = whmcs_driver.user(603)
    start = (await whmcs_driver.send(user, "/neworder"))[-1]
    assert start.button_texts()[:-1] == ["🌐 Hosting"]  # the EUR-only server is not offered
    # Shown in the display currency (EUR, the bot's default) beside the exact USD amount.
    tariffs = edited(await whmcs_driver.click(user, start, "Hosting"))
    assert "<b>VPS 1</b> — from €5.56 ($6.00) / 1 month" in (tariffs.text or "")
    periods = edited(await whmcs_driver.click(user, tariffs, "VPS 1"))
    assert periods.button_texts()[:2] == ["1 month — €5.56 ($6.00)", "12 months — €61.11 ($66.00)"]
    confirm = edited(await whmcs_driver.click(user, periods, "1 month"))
    assert "Price: €5.56 ($6.00)" in (confirm.text or "")
    await whmcs_driver.click(user, confirm, "Pay")
    [placed] = whmcs.called("AddOrder")
    assert placed.params["pid"] == {"0": str(vps.pid)}
    assert client.credit == Decimal("4.00")  # 6.00 USD, from the USD credit


async def test_the_start_check_warns_when_default_currency_is_not_whmcs_default(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING, "services.whmcs")
    # EUR is configured in WHMCS, but with a rate (0.9) from the default currency (USD).
    [problem] = await whmcs_gateway.check_setup()
    assert "DEFAULT_CURRENCY=EUR does not look like WHMCS's default currency" in problem
    assert problem in caplog.text
    whmcs.currency_rates = {"USD": Decimal(1)}
    [problem] = await whmcs_gateway.check_setup()
    assert "DEFAULT_CURRENCY=EUR is not a currency of WHMCS (it has: USD)" in problem
    whmcs.currency_rates = {"USD": Decimal("1.1"), "EUR": Decimal(1)}
    assert await whmcs_gateway.check_setup() == []
    assert [c.action for c in whmcs.calls] == ["GetCurrencies"] * 3


async def test_the_start_check_never_stops_the_bot(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    whmcs.fail_next(Fault.AUTH, "GetCurrencies")  # an API role without GetCurrencies
    [problem] = await whmcs_gateway.check_setup()
    assert "could not be checked against WHMCS" in problem
    await whmcs.go_down()
    [problem] = await whmcs_gateway.check_setup()
    assert "could not be checked" in problem
