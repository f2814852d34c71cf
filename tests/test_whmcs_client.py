"""The WHMCS client against the loopback stand-in (tests/harness/whmcs.py): every action
wrapper, WHMCS's quirks, and how each fault maps to WhmcsUnavailable / WhmcsError."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from datetime import date, datetime
from decimal import Decimal

import pytest

from services.whmcs import (
    CANCEL_IMMEDIATE,
    OrderLine,
    WhmcsAuthError,
    WhmcsClient,
    WhmcsConfig,
    WhmcsError,
    WhmcsUnavailable,
)
from services.whmcs.models import ProductPrice
from services.whmcs.parse import as_date, as_int, formatted_money, money_minor, nested_list
from services.whmcs.transport import ParamValue, _decode, encode_params
from tests.harness.whmcs import IDENTIFIER, SECRET, Client, Fault, InvoiceLine, WhmcsStandIn


@pytest.fixture
async def whmcs() -> AsyncIterator[WhmcsStandIn]:
    async with WhmcsStandIn() as standin:
        yield standin


def make_client(whmcs: WhmcsStandIn, **overrides: object) -> WhmcsClient:
    values: dict[str, object] = {"url": whmcs.url, "identifier": IDENTIFIER, "secret": SECRET}
    values |= {"connect_timeout": 1.0, "total_timeout": 0.5} | overrides
    return WhmcsClient(WhmcsConfig(**values))  # type: ignore[arg-type]


@pytest.fixture
async def api(whmcs: WhmcsStandIn) -> AsyncIterator[WhmcsClient]:
    async with make_client(whmcs) as client:
        yield client


@pytest.fixture
def alice(whmcs: WhmcsStandIn) -> Client:
    return whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal("12.50"))


# -- clients ------------------------------------------------------------------------------


async def test_get_client_by_id_and_by_email(api: WhmcsClient, alice: Client) -> None:
    by_id = await api.get_client(alice.id)
    by_email = await api.get_client(email="ALICE@example.com")
    assert by_id == by_email
    assert (by_id.id, by_id.firstname, by_id.email) == (alice.id, "Alice", "alice@example.com")
    assert (by_id.credit_minor, by_id.currency_code, by_id.currency_id) == (1250, "USD", 1)
    assert by_id.email_preferences is not None and by_id.email_preferences.invoice is True


async def test_unknown_client_is_a_business_error(api: WhmcsClient) -> None:
    with pytest.raises(WhmcsError) as raised:
        await api.get_client(999)
    assert not isinstance(raised.value, WhmcsAuthError)
    assert (raised.value.action, raised.value.message) == ("GetClientsDetails", "Client Not Found")


async def test_update_client_sends_php_arrays(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    changes: dict[str, ParamValue] = {
        "city": "Berlin",
        "email_preferences": {"invoice": False},
        "marketingoptin": True,
    }
    await api.update_client(alice.id, changes)
    assert whmcs.called("UpdateClient")[0].params == {
        "responsetype": "json",
        "city": "Berlin",
        "email_preferences": {"invoice": "0"},
        "marketingoptin": "1",
        "clientid": str(alice.id),
    }
    details = await api.get_client(alice.id)
    assert details.city == "Berlin" and details.marketing_opt_in is True
    assert details.email_preferences is not None and details.email_preferences.invoice is False


async def test_update_client_refuses_a_taken_email(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    whmcs.add_client("Bob", "Jones", "bob@example.com")
    with pytest.raises(WhmcsError, match="Duplicate Email Address"):
        await api.update_client(alice.id, {"email": "bob@example.com"})


async def test_send_email_is_recorded(api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client) -> None:
    await api.send_email(alice.id, "Your code", "<p>Code: 123456</p>")
    assert [(e.client_id, e.customtype, e.subject, e.message) for e in whmcs.emails] == [
        (alice.id, "general", "Your code", "<p>Code: 123456</p>")
    ]
    with pytest.raises(WhmcsError, match=r"Sending Failed\. Please see documentation\."):
        await api.send_email(424242, "Your code", "<p>x</p>")


# -- services, catalogue, orders ----------------------------------------------------------


async def test_services_parse_string_numbers_and_leave_the_password_out(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    plan = whmcs.add_product("Starter", "12.95")
    service = whmcs.add_service(alice, plan, domain="demo.com", dedicatedip="10.0.0.5")
    [parsed] = await api.get_services(alice.id, "USD")
    assert (parsed.id, parsed.pid, parsed.name, parsed.domain) == (
        service.id,
        plan.pid,
        "Starter",
        "demo.com",
    )
    assert (parsed.dedicatedip, parsed.status, parsed.billingcycle) == (
        "10.0.0.5",
        "Active",
        "Monthly",
    )
    assert (parsed.nextduedate, parsed.recurring_minor) == (date(2026, 1, 25), 1295)
    assert not hasattr(parsed, "password")


async def test_no_services_is_an_empty_string_and_an_empty_list(
    api: WhmcsClient, alice: Client
) -> None:
    assert await api.get_services(alice.id, "USD") == []


async def test_services_are_read_across_pages(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    plan = whmcs.add_product("Starter", "5.00")
    ids = [whmcs.add_service(alice, plan).id for _ in range(5)]
    api.page_size = 2
    assert [s.id for s in await api.get_services(alice.id, "USD")] == ids
    pages = [
        (c.params["limitstart"], c.params["limitnum"]) for c in whmcs.called("GetClientsProducts")
    ]
    assert pages == [("0", "2"), ("2", "2"), ("4", "2")]


async def test_products_pricing_leaves_disabled_cycles_out(
    api: WhmcsClient, whmcs: WhmcsStandIn
) -> None:
    plan = whmcs.add_product("Pro", "25.99", annually="259.90")
    whmcs.add_product("Other", "1.00")
    [product] = await api.get_products(pid=[plan.pid])
    assert (product.pid, product.name) == (plan.pid, "Pro")
    assert product.prices == (
        ProductPrice("USD", "monthly", 2599, 0),
        ProductPrice("USD", "annually", 25990, 0),
    )
    assert product.price("USD", "quarterly") is None


async def test_new_order_makes_an_invoice_paid_from_credit(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    plan = whmcs.add_product("Starter", "10.00")
    order = await api.add_order(
        alice.id, "telegram", lines=[OrderLine(plan.pid, "monthly", "a.com")]
    )
    assert order.invoice_id is not None and len(order.service_ids) == 1
    assert whmcs.services[order.service_ids[0]].status == "Pending"
    applied = await api.apply_credit(order.invoice_id, "USD")
    assert (applied.amount_minor, applied.invoice_paid) == (1000, True)
    assert whmcs.clients[alice.id].credit == Decimal("2.50")
    invoice = await api.get_invoice(order.invoice_id, "USD")
    assert (invoice.status, invoice.total_minor, invoice.balance_minor) == ("Paid", 1000, 0)


async def test_renewal_order_moves_the_due_date_once_paid(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    service = whmcs.add_service(alice, whmcs.add_product("Starter", "10.00"))
    order = await api.add_order(alice.id, "telegram", renew_service_ids=[service.id])
    assert whmcs.called("AddOrder")[0].params["servicerenewals"] == {"0": str(service.id)}
    assert order.invoice_id is not None and order.service_ids == ()
    await api.apply_credit(order.invoice_id, "USD", Decimal("10.00"))
    assert whmcs.services[service.id].nextduedate == date(2026, 2, 25)


async def test_order_with_a_bad_payment_method_is_refused(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    plan = whmcs.add_product("Starter", "10.00")
    with pytest.raises(WhmcsError, match=r"Invalid Payment Method\. Valid options include"):
        await api.add_order(alice.id, "bitcoin", lines=[OrderLine(plan.pid, "monthly")])


async def test_upgrade_quote_then_upgrade(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    service = whmcs.add_service(alice, whmcs.add_product("Small", "10.00"))
    big = whmcs.add_product("Big", "40.00")
    quote = await api.upgrade_product(
        service.id, big.pid, "monthly", "telegram", "USD", calconly=True
    )
    assert (quote.new_product_name, quote.days_until_renewal, quote.total_days) == ("Big", 10, 30)
    assert (quote.price_minor, quote.invoice_id) == (1000, None)
    assert whmcs.services[service.id].pid != big.pid
    done = await api.upgrade_product(
        service.id, big.pid, "monthly", "telegram", "USD", calconly=False
    )
    assert done.invoice_id is not None
    whmcs.clients[alice.id].credit = Decimal("10.00")
    await api.apply_credit(done.invoice_id, "USD")
    assert whmcs.services[service.id].pid == big.pid


async def test_cancel_request_only_once(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    service = whmcs.add_service(alice, whmcs.add_product("Small", "10.00"))
    await api.add_cancel_request(service.id, CANCEL_IMMEDIATE, "moving")
    assert whmcs.services[service.id].cancel_request == "Immediate"
    with pytest.raises(WhmcsError, match="Existing Cancellation Request Exists"):
        await api.add_cancel_request(service.id)


async def test_gen_invoices_for_one_service(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    service = whmcs.add_service(alice, whmcs.add_product("Small", "7.00"))
    created, latest = await api.gen_invoices(client_id=alice.id, service_ids=[service.id])
    assert created == 1 and latest is not None
    invoice = await api.get_invoice(latest, "USD")
    assert [(i.type, i.relid, i.amount_minor) for i in invoice.items] == [
        ("Hosting", service.id, 700)
    ]
    assert await api.gen_invoices(client_id=alice.id, service_ids=[service.id]) == (0, None)


# -- money --------------------------------------------------------------------------------


async def test_invoices_list_and_detail(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    first = whmcs.add_invoice(
        alice, InvoiceLine("Hosting", Decimal("15.95")), duedate=date(2026, 1, 8)
    )
    second = whmcs.add_invoice(alice, InvoiceLine("Domain", Decimal("9.00")))
    listed = [inv async for inv in api.iter_invoices(alice.id, "EUR")]
    assert [(i.id, i.currency, i.total_minor, i.balance_minor) for i in listed] == [
        (second.id, "USD", 900, 900),
        (first.id, "USD", 1595, 1595),
    ]
    detail = await api.get_invoice(first.id, "USD")
    assert (detail.userid, detail.status, detail.duedate, detail.datepaid) == (
        alice.id, "Unpaid", date(2026, 1, 8), None,
    )  # fmt: skip
    with pytest.raises(WhmcsError, match="Invoice ID Not Found"):
        await api.get_invoice(999, "USD")


async def test_top_up_credits_once_per_transid(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    await api.add_credit_transaction(alice.id, "telegram", "tg-charge-1", Decimal("5.00"), "Stars")
    with pytest.raises(WhmcsError, match="Transaction ID must be Unique"):
        await api.add_credit_transaction(
            alice.id, "telegram", "tg-charge-1", Decimal("5.00"), "Stars"
        )
    assert (await api.get_client(alice.id)).credit_minor == 1750
    assert [c.params["credit"] for c in whmcs.called("AddTransaction")] == ["1", "1"]


async def test_invoice_payment_pays_the_invoice(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    invoice = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("3.00")))
    await api.add_invoice_payment(invoice.id, "tg-2", "telegram", datetime(2026, 1, 15, 12, 0, 0))
    assert whmcs.called("AddInvoicePayment")[0].params["date"] == "2026-01-15 12:00:00"
    assert (await api.get_invoice(invoice.id, "USD")).status == "Paid"
    assert [(t.transid, t.amountin) for t in whmcs.transactions] == [("tg-2", Decimal("3.00"))]


async def test_apply_credit_beyond_the_balance_is_refused(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    invoice = whmcs.add_invoice(alice, InvoiceLine("Hosting", Decimal("50.00")))
    with pytest.raises(WhmcsError, match="Amount exceeds customer credit balance"):
        await api.apply_credit(invoice.id, "USD", Decimal("20.00"))
    assert await api.add_credit(alice.id, Decimal("1.25"), "goodwill", "USD") == 1375


# -- support ------------------------------------------------------------------------------


async def test_ticket_lifecycle(api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client) -> None:
    departments = await api.get_departments()
    assert [(d.id, d.name, d.open_tickets) for d in departments] == [
        (1, "Support", 0),
        (2, "Billing", 0),
    ]
    opened = await api.open_ticket(alice.id, 2, "Site down", "Help!")
    assert len(opened.tid) == 6 and opened.c
    await api.add_ticket_reply(opened.id, "Looking into it", admin_username="jane")
    await api.add_ticket_reply(opened.id, "Thanks", client_id=alice.id)
    ticket = await api.get_ticket(opened.id)
    assert (ticket.deptid, ticket.userid, ticket.subject, ticket.status) == (
        2, alice.id, "Site down", "Customer-Reply",
    )  # fmt: skip
    assert [(r.admin, r.message) for r in ticket.replies] == [
        ("", "Help!"), ("jane", "Looking into it"), ("", "Thanks"),
    ]  # fmt: skip
    assert ticket.lastreply == ticket.replies[-1].posted
    await api.update_ticket(opened.id, status="Closed")
    listed = [t async for t in api.iter_tickets(client_id=alice.id)]
    assert [(t.id, t.status, t.replies) for t in listed] == [(opened.id, "Closed", ())]
    assert [
        t async for t in api.iter_tickets(client_id=alice.id, status="All Active Tickets")
    ] == []


async def test_ticket_errors(api: WhmcsClient, alice: Client) -> None:
    with pytest.raises(WhmcsError, match="Department ID not found"):
        await api.open_ticket(alice.id, 99, "s", "m")
    with pytest.raises(WhmcsError, match="Ticket ID not found"):
        await api.add_ticket_reply(999, "m", client_id=alice.id)
    with pytest.raises(ValueError):
        await api.add_ticket_reply(1, "m")


# -- faults -------------------------------------------------------------------------------


async def test_a_slow_read_times_out_and_is_tried_once_more(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    whmcs.fail_next(Fault.SLOW, "GetClientsDetails", seconds=2.0)
    assert (await api.get_client(alice.id)).id == alice.id
    assert whmcs.actions() == ["GetClientsDetails", "GetClientsDetails"]


async def test_a_read_that_keeps_failing_is_tried_twice_only(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    whmcs.fail_next(Fault.MAINTENANCE, times=5)
    with pytest.raises(WhmcsUnavailable, match="HTTP 503"):
        await api.get_client(alice.id)
    assert whmcs.actions() == ["GetClientsDetails", "GetClientsDetails"]


async def test_a_slow_write_is_never_repeated(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    whmcs.slow(2.0, "AddTransaction")
    with pytest.raises(WhmcsUnavailable, match="timed out"):
        await api.add_credit_transaction(alice.id, "telegram", "tg-9", Decimal("1.00"), "Stars")
    assert whmcs.actions() == ["AddTransaction"]


@pytest.mark.parametrize("kind", [Fault.MAINTENANCE, Fault.RESET])
async def test_write_faults_are_unavailable_and_not_repeated(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client, kind: Fault
) -> None:
    whmcs.fail_next(kind, "AddTicketReply")
    ticket = whmcs.add_ticket(alice, "s", "m")
    with pytest.raises(WhmcsUnavailable):
        await api.add_ticket_reply(ticket.id, "hello", client_id=alice.id)
    assert whmcs.actions() == ["AddTicketReply"]
    assert len(whmcs.tickets[ticket.id].replies) == 1


async def test_a_write_performed_but_unanswered_is_unavailable(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    whmcs.fail_next(Fault.RESET, "AddTransaction", performed=True)
    with pytest.raises(WhmcsUnavailable):
        await api.add_credit_transaction(alice.id, "telegram", "tg-7", Decimal("1.00"), "Stars")
    assert whmcs.clients[alice.id].credit == Decimal("13.50")  # done on WHMCS's side
    with pytest.raises(WhmcsError, match="Transaction ID must be Unique"):
        await api.add_credit_transaction(alice.id, "telegram", "tg-7", Decimal("1.00"), "Stars")


async def test_whmcs_down_is_unavailable(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    await whmcs.go_down()
    with pytest.raises(WhmcsUnavailable, match="ClientConnectorError"):
        await api.get_client(alice.id)
    await whmcs.come_back()
    assert (await api.get_client(alice.id)).id == alice.id


async def test_wrong_secret_is_an_auth_error_read_from_the_403_body(
    whmcs: WhmcsStandIn, alice: Client
) -> None:
    async with make_client(whmcs, secret="wrong") as client:
        with pytest.raises(WhmcsAuthError) as raised:
            await client.get_client(alice.id)
    assert (raised.value.status, raised.value.message) == (403, "Authentication Failed")
    assert whmcs.actions() == ["GetClientsDetails"]  # not retried


async def test_ip_allow_list_and_access_key(alice: Client) -> None:
    async with WhmcsStandIn(access_key="k3y!") as whmcs:
        whmcs.allowed_ips = {"10.9.9.9"}
        whmcs.clients[alice.id] = alice
        async with make_client(whmcs) as client:
            with pytest.raises(WhmcsAuthError, match=r"Invalid IP 127\.0\.0\.1"):
                await client.get_client(alice.id)
        async with make_client(whmcs, access_key="k3y!") as client:
            assert (await client.get_client(alice.id)).id == alice.id
        assert "accesskey" not in whmcs.calls[-1].params


async def test_injected_auth_and_business_errors(
    api: WhmcsClient, whmcs: WhmcsStandIn, alice: Client
) -> None:
    whmcs.fail_next(Fault.AUTH)
    with pytest.raises(WhmcsAuthError):
        await api.get_client(alice.id)
    whmcs.fail_next(Fault.ERROR, "GetClientsDetails", message="Client Not Found")
    with pytest.raises(WhmcsError, match="Client Not Found"):
        await api.get_client(alice.id)
    assert (await api.get_client(alice.id)).id == alice.id


async def test_unknown_action_is_an_error(api: WhmcsClient) -> None:
    with pytest.raises(WhmcsError, match="Command Not Found"):
        await api.call("NoSuchAction")


async def test_secrets_never_reach_the_log(
    whmcs: WhmcsStandIn, alice: Client, caplog: pytest.LogCaptureFixture
) -> None:
    whmcs.add_service(alice, whmcs.add_product("Starter", "1.00"), password="SvcPa55word")
    caplog.set_level(logging.DEBUG)
    async with make_client(whmcs, access_key="AcCe55-key") as client:
        await client.get_services(alice.id, "USD")
        whmcs.fail_next(Fault.AUTH)
        with pytest.raises(WhmcsAuthError):
            await client.get_client(alice.id)
        assert "AcCe55-key" not in repr(client.config) and SECRET not in repr(client.config)
    text = caplog.text
    assert "GetClientsProducts" in text and "GetClientsDetails" in text
    for secret in (SECRET, IDENTIFIER, "AcCe55-key", "SvcPa55word"):
        assert secret not in text
    assert all(SECRET not in str(call.params) for call in whmcs.calls)


async def test_session_is_lazy_and_closed(whmcs: WhmcsStandIn, alice: Client) -> None:
    client = make_client(whmcs)
    assert client._session is None
    await client.get_client(alice.id)
    session = client._session
    assert session is not None and not session.closed
    await client.close()
    assert session.closed and client._session is None


# -- parsing ------------------------------------------------------------------------------


def test_nested_lists_in_every_shape() -> None:
    row = {"id": "1"}
    assert nested_list({"products": {"product": [row]}}, "products", "product") == [row]
    assert nested_list({"products": {"product": row}}, "products", "product") == [row]
    assert nested_list({"products": ""}, "products", "product") == []
    assert nested_list({"products": {"product": []}}, "products", "product") == []
    assert nested_list({}, "products", "product") == []


def test_numbers_money_and_dates() -> None:
    assert [as_int(v) for v in ("12", 12, "", None, "3.0")] == [12, 12, 0, 0, 3]
    assert [money_minor(v, "USD") for v in ("12.50", 12, "0.00", 15.95, "")] == [
        1250,
        1200,
        0,
        1595,
        0,
    ]
    assert money_minor("1000.00", "JPY") == 1000
    assert formatted_money("$-8.67 USD") == Decimal("-8.67")
    assert as_date("2016-11-25") == date(2016, 11, 25)
    assert as_date("0000-00-00") is None and as_date("") is None


def test_params_are_encoded_like_http_build_query() -> None:
    params: dict[str, ParamValue] = {
        "pid": [1, 2],
        "prefs": {"invoice": False},
        "credit": True,
        "skip": None,
        "a": Decimal("1.50"),
    }
    assert encode_params(params) == [
        ("pid[0]", "1"), ("pid[1]", "2"), ("prefs[invoice]", "0"), ("credit", "1"), ("a", "1.50"),
    ]  # fmt: skip


def test_an_html_page_with_http_200_is_unavailable() -> None:
    with pytest.raises(WhmcsUnavailable, match="HTTP 200, not a JSON answer"):
        _decode("GetInvoice", 200, "<html>Maintenance</html>")
    with pytest.raises(WhmcsUnavailable, match="HTTP 502"):
        _decode("GetInvoice", 502, '{"result": "success"}')
