"""Support tickets over WHMCS (the stand-in): the customer's side with ownership and the
department mapping, the staff side (admin usernames, notes), the reminder scan, the account
summary and lookup, and WHMCS being down."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from services.billing import Billing, per_call
from services.contracts.tickets import Attachment
from services.errors import (
    AlreadyDone,
    BillingUnavailable,
    InvalidState,
    LimitReached,
    NotFound,
    PermissionDenied,
    ValidationFailed,
)
from services.whmcs.gateway import WhmcsGateway
from services.whmcs.ticket_texts import plain_text, status_of
from tests.harness.whmcs import Fault, WhmcsStandIn
from tests.whmcs_fixtures import linked_account

WINDOW = timedelta(days=7)


async def alice_and_bob(gateway: WhmcsGateway, whmcs: WhmcsStandIn) -> tuple[Billing, int, int]:
    alice = whmcs.add_client("Alice", "Smith", "alice@example.com")
    bob = whmcs.add_client("Bob", "Jones", "bob@example.com")
    a = await linked_account(gateway, 501, alice)
    b = await linked_account(gateway, 502, bob)
    return per_call(gateway), a.id, b.id


async def test_create_list_read_reply_close_reopen(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, alice, bob = await alice_and_bob(whmcs_gateway, whmcs)
    files = [Attachment("photo", "AgADshot"), Attachment("document", "BQADlog")]
    ticket = await billing.create_ticket(
        alice, "billing", "  Wrong   invoice ", "It is wrong: <total> & tax", files, language="ru"
    )
    [opened] = whmcs.called("OpenTicket")
    assert opened.params["deptid"] == "2" and opened.params["subject"] == "Wrong invoice"
    assert (
        opened.params["message"] == "It is wrong: <total> & tax\n\n[2 files attached in Telegram]"
    )
    stored = whmcs.tickets[ticket.id]
    assert stored.userid == whmcs.clients[stored.userid].id

    got = await billing.get_ticket(alice, ticket.id)
    assert (got.department, got.subject, got.status, got.language) == (
        "billing", "Wrong invoice", "open", "ru",
    )  # fmt: skip
    [first] = await billing.ticket_messages(alice, ticket.id)
    assert (first.author, first.text) == ("customer", "It is wrong: <total> & tax")
    assert [a.file_id for a in first.attachments] == ["AgADshot", "BQADlog"]

    with pytest.raises(NotFound):  # another client's ticket is never shown
        await billing.get_ticket(bob, ticket.id)
    with pytest.raises(NotFound):
        await billing.ticket_messages(bob, ticket.id)
    with pytest.raises(NotFound):
        await billing.add_customer_message(bob, ticket.id, "mine?", reopen_window=WINDOW)
    with pytest.raises(NotFound):
        await billing.close_ticket(bob, ticket.id)
    with pytest.raises(NotFound):
        await billing.get_ticket(alice, 999_999)
    assert (await billing.list_tickets(bob)).total == 0

    await billing.add_customer_message(alice, ticket.id, "More details", reopen_window=WINDOW)
    reply = whmcs.called("AddTicketReply")[-1].params
    assert (reply["clientid"], reply.get("adminusername")) == (str(stored.userid), None)
    closed = await billing.close_ticket(alice, ticket.id)
    assert closed.status == "closed" and closed.closed_at is not None
    assert whmcs.called("UpdateTicket")[-1].params["status"] == "Closed"
    with pytest.raises(AlreadyDone):
        await billing.close_ticket(alice, ticket.id)
    reopened = await billing.reopen_ticket(alice, ticket.id, reopen_window=WINDOW)
    assert reopened.status == "open" and stored.status == "Open"
    with pytest.raises(AlreadyDone):
        await billing.reopen_ticket(alice, ticket.id, reopen_window=WINDOW)

    older = whmcs.add_ticket(whmcs.clients[stored.userid], "Old one", "hi")
    older.status = "Closed"  # closed in WHMCS long ago: outside the window
    with pytest.raises(InvalidState):
        await billing.reopen_ticket(alice, older.id, reopen_window=WINDOW)
    with pytest.raises(InvalidState):
        await billing.add_customer_message(alice, older.id, "again", reopen_window=WINDOW)
    page = await billing.list_tickets(alice)
    assert [(t.id, t.status) for t in page.items] == [(ticket.id, "open"), (older.id, "closed")]


async def test_departments_and_validation(whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn) -> None:
    billing, alice, _ = await alice_and_bob(whmcs_gateway, whmcs)
    with pytest.raises(ValidationFailed) as unknown:
        await billing.create_ticket(alice, "sales", "Subject", "text")
    assert unknown.value.detail == "department"
    # abuse=3 is mapped, but this WHMCS has no department 3.
    with pytest.raises(ValidationFailed) as refused:
        await billing.create_ticket(alice, "abuse", "Subject", "text")
    assert refused.value.params["setting"] == "WHMCS_DEPARTMENTS"
    core = whmcs_gateway.core
    core.options = replace(core.options, departments={"tech": 1})  # type: ignore[attr-defined]
    with pytest.raises(ValidationFailed) as unmapped:
        await billing.create_ticket(alice, "billing", "Subject", "text")
    assert unmapped.value.params["setting"] == "WHMCS_DEPARTMENTS"
    with pytest.raises(ValidationFailed):
        await billing.create_ticket(alice, "tech", "ab", "text")
    with pytest.raises(ValidationFailed):
        await billing.create_ticket(alice, "tech", "Subject", "   ")
    assert not whmcs.called("OpenTicket")[1:]  # only the refused department reached WHMCS


async def test_open_ticket_limit_counts_whmcs_tickets(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, alice, _ = await alice_and_bob(whmcs_gateway, whmcs)
    client = whmcs.clients[await billing.billing_client_id(alice) or 0]
    for n in range(3):
        whmcs.add_ticket(client, f"Ticket {n}", "text")
    with pytest.raises(LimitReached) as limit:
        await billing.check_new_ticket(alice)
    assert (limit.value.detail, limit.value.limit) == ("open_tickets", 3)
    for ticket in whmcs.tickets.values():
        ticket.status = "Closed"
    await billing.check_new_ticket(alice)


async def test_staff_side_admin_usernames_and_notes(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, alice, _ = await alice_and_bob(whmcs_gateway, whmcs)
    ticket = await billing.create_ticket(alice, "tech", "Server down", "Help")
    answered = await billing.add_staff_message(ticket.id, 7001, "Anna", "Rebooted")
    assert answered.status == "answered" and answered.account_id == alice
    params = whmcs.called("AddTicketReply")[-1].params
    assert (params["adminusername"], params.get("clientid")) == ("anna", None)

    with pytest.raises(PermissionDenied) as missing:  # 77: in no map, no default admin
        await billing.add_staff_message(ticket.id, 77, "Eve", "hi")
    assert missing.value.params["setting"] == "WHMCS_ADMIN_USERNAMES"
    core = whmcs_gateway.core
    core.options = replace(core.options, default_admin_username="support")  # type: ignore[attr-defined]
    await billing.add_staff_message(ticket.id, 77, "Eve", "Default admin")
    assert whmcs.called("AddTicketReply")[-1].params["adminusername"] == "support"

    await billing.add_staff_note(ticket.id, 7001, "Anna", "Customer is &amp; VIP")
    assert whmcs.called("AddTicketNote")[-1].params["message"] == "Anna: Customer is &amp; VIP"
    customer_view = await billing.ticket_messages(alice, ticket.id)
    assert [m.author for m in customer_view] == ["customer", "staff", "staff"]
    assert all("VIP" not in m.text for m in customer_view)
    staff_view = await billing.staff_ticket_messages(ticket.id)
    assert [m.author for m in staff_view].count("note") == 1
    assert [m.text for m in staff_view if m.author == "note"] == ["Anna: Customer is & VIP"]

    closed = await billing.staff_close_ticket(ticket.id)
    assert closed.status == "closed"
    with pytest.raises(AlreadyDone):
        await billing.staff_close_ticket(ticket.id)
    assert (await billing.staff_reopen_ticket(ticket.id)).status == "open"
    with pytest.raises(AlreadyDone):
        await billing.staff_reopen_ticket(ticket.id)

    stranger = whmcs.add_client("Carl", "Nobody", "carl@example.com")
    unlinked = whmcs.add_ticket(stranger, "Not ours", "text")
    with pytest.raises(NotFound):  # the desk serves linked clients only
        await billing.staff_get_ticket(unlinked.id)


async def test_tickets_awaiting_reminder(whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn) -> None:
    billing, alice, _bob = await alice_and_bob(whmcs_gateway, whmcs)
    a_client = whmcs.clients[await billing.billing_client_id(alice) or 0]
    waiting = whmcs.add_ticket(a_client, "Waiting", "hello")  # Open, 2026-01-10 09:00
    replied = whmcs.add_ticket(a_client, "Replied", "hello")
    replied.status = "Customer-Reply"
    answered = whmcs.add_ticket(a_client, "Answered", "hello")
    answered.status = "Answered"
    whmcs.add_ticket(whmcs.add_client("Carl", "N", "c@example.com"), "Unlinked", "x")
    due = await billing.tickets_awaiting_reminder(datetime(2026, 1, 11, tzinfo=UTC))
    assert [t.id for t in due] == [waiting.id, replied.id]
    assert {t.account_id for t in due} == {alice}
    assert whmcs.called("GetTickets")[-1].params["status"] == "Awaiting Reply"
    assert await billing.tickets_awaiting_reminder(datetime(2026, 1, 9, tzinfo=UTC)) == []


async def test_account_summary_and_find_account(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, alice, _ = await alice_and_bob(whmcs_gateway, whmcs)
    client = whmcs.clients[await billing.billing_client_id(alice) or 0]
    client.credit = Decimal("7.25")
    product = whmcs.add_product("VPS S", "5.00")
    whmcs.add_service(client, product)
    whmcs.add_service(client, product, status="Suspended")
    whmcs_gateway.core._client_changed(client.id)  # type: ignore[attr-defined]
    summary = await billing.account_summary(alice)
    assert (summary.account_id, summary.balance_minor, summary.currency) == (alice, 725, "USD")
    assert (summary.first_name, summary.email, summary.telegram_id) == (
        "Alice", "alice@example.com", 501,
    )  # fmt: skip
    assert summary.active_orders == 1 and len(summary.orders) == 2
    assert await billing.staff_find_account(f"#{client.id}") == alice
    assert await billing.staff_find_account(str(client.id)) == alice
    login = (await billing.get_account(alice)).login
    assert await billing.staff_find_account(login) == alice
    assert await billing.staff_find_account("nobody-here") is None


async def test_whmcs_down_is_billing_unavailable(
    whmcs_gateway: WhmcsGateway, whmcs: WhmcsStandIn
) -> None:
    billing, alice, _ = await alice_and_bob(whmcs_gateway, whmcs)
    ticket = await billing.create_ticket(alice, "tech", "Server down", "Help")
    whmcs.fail_next(Fault.MAINTENANCE, "GetTicket", times=2)
    with pytest.raises(BillingUnavailable):
        await billing.get_ticket(alice, ticket.id)
    whmcs.fail_next(Fault.MAINTENANCE, "AddTicketReply")
    with pytest.raises(BillingUnavailable):
        await billing.add_staff_message(ticket.id, 7001, "Anna", "hi")
    await whmcs.go_down()
    with pytest.raises(BillingUnavailable):
        await billing.list_tickets(alice)
    await whmcs.come_back()
    assert (await billing.list_tickets(alice)).total == 1


def test_message_text_and_statuses() -> None:
    assert plain_text("a &lt;b&gt; &amp; <c><br />d\r\n<p>e</p>") == "a <b> & <c>\nd\ne"
    assert [status_of(s) for s in ("Open", "Answered", "Customer-Reply", "Closed")] == [
        "open", "answered", "customer_replied", "closed",
    ]  # fmt: skip
    assert (status_of("In Progress"), status_of("On Hold"), status_of("Custom")) == (
        "open", "answered", "open",
    )  # fmt: skip
