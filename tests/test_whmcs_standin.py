"""The WHMCS stand-in keeps the reference's shapes: raw answers, read without our parsing."""

from __future__ import annotations

from collections.abc import AsyncIterator
from decimal import Decimal

import aiohttp
import pytest

from tests.harness.whmcs import IDENTIFIER, SECRET, Fault, InvoiceLine, WhmcsStandIn

AUTH = {"identifier": IDENTIFIER, "secret": SECRET, "responsetype": "json"}


@pytest.fixture
async def whmcs() -> AsyncIterator[WhmcsStandIn]:
    async with WhmcsStandIn() as standin:
        yield standin


async def post(whmcs: WhmcsStandIn, **fields: str) -> tuple[int, dict[str, object]]:
    async with (
        aiohttp.ClientSession() as session,
        session.post(whmcs.url, data={**AUTH, **fields}) as response,
    ):
        return response.status, await response.json(content_type=None)


async def test_numbers_are_strings_and_empty_lists_are_empty_strings(whmcs: WhmcsStandIn) -> None:
    alice = whmcs.add_client("Alice", "Smith", "a@example.com")
    status, body = await post(whmcs, action="GetClientsProducts", clientid=str(alice.id))
    assert (status, body["totalresults"], body["numreturned"], body["products"]) == (
        200,
        "0",
        0,
        "",
    )
    whmcs.add_service(alice, whmcs.add_product("Starter", "12.95"))
    _, body = await post(whmcs, action="GetClientsProducts", clientid=str(alice.id))
    [row] = body["products"]["product"]  # type: ignore[index]
    assert (row["recurringamount"], row["clientid"], row["nextduedate"]) == (
        "12.95", str(alice.id), "2026-01-25",
    )  # fmt: skip
    invoice = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("15.95")))
    _, body = await post(whmcs, action="GetInvoice", invoiceid=str(invoice.id))
    assert (body["invoiceid"], body["total"], body["balance"], body["transactions"]) == (
        invoice.id, "15.95", "15.95", "",
    )  # fmt: skip


async def test_wrong_credentials_get_403_with_a_json_body(whmcs: WhmcsStandIn) -> None:
    status, body = await post(whmcs, action="GetClientsDetails", clientid="1", secret="nope")
    assert (status, body) == (403, {"result": "error", "message": "Authentication Failed"})


async def test_unknown_action_and_business_errors(whmcs: WhmcsStandIn) -> None:
    assert await post(whmcs, action="Nope") == (
        200,
        {"result": "error", "message": "Command Not Found"},
    )
    assert await post(whmcs, action="GetClientsDetails") == (
        200, {"result": "error", "message": "Either clientid Or email Is Required"},
    )  # fmt: skip


async def test_fail_next_n_then_answers_again(whmcs: WhmcsStandIn) -> None:
    whmcs.add_client("Alice", "Smith", "a@example.com", id=1)
    whmcs.fail_next(Fault.ERROR, "GetClientsDetails", times=2, message="Boom")
    for _ in range(2):
        assert (await post(whmcs, action="GetClientsDetails", clientid="1"))[1]["message"] == "Boom"
    assert (await post(whmcs, action="GetClientsDetails", clientid="1"))[1]["result"] == "success"


async def test_maintenance_page_is_html_with_503(whmcs: WhmcsStandIn) -> None:
    whmcs.fail_next(Fault.MAINTENANCE)
    async with (
        aiohttp.ClientSession() as session,
        session.post(whmcs.url, data={**AUTH, "action": "GetInvoices"}) as response,
    ):
        assert response.status == 503 and response.content_type == "text/html"
        assert "maintenance" in await response.text()


async def test_call_log_keeps_parameters_without_credentials(whmcs: WhmcsStandIn) -> None:
    await post(whmcs, action="GetInvoices", userid="7", accesskey="k")
    assert [(c.action, c.params) for c in whmcs.calls] == [
        ("GetInvoices", {"responsetype": "json", "userid": "7"})
    ]
