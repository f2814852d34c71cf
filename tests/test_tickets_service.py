"""The tickets domain of the embedded billing, on SQLite and on PostgreSQL."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest

from services.contracts.tickets import Attachment
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.errors import AlreadyDone, InvalidState, NotFound, ValidationFailed

WINDOW = timedelta(days=7)


async def _accounts(gateway: EmbeddedGateway) -> tuple[int, int]:
    async with gateway.transaction() as billing:
        alice, _ = await billing.get_or_create_account(501, 501, name="Alice")
        bob, _ = await billing.get_or_create_account(502, 502, name="Bob")
    return alice.id, bob.id


async def test_create_list_and_read_own_tickets_only(gateway: EmbeddedGateway) -> None:
    alice, bob = await _accounts(gateway)
    photo = Attachment("photo", "AgADphoto1")
    async with gateway.transaction() as billing:
        first = await billing.create_ticket(
            alice, "tech", "  Server   down ", "It does not boot", [photo], language="ru"
        )
        second = await billing.create_ticket(alice, "billing", "Invoice", "Wrong amount")
        other = await billing.create_ticket(bob, "abuse", "Spam", "From 203.0.113.5")
    assert (first.subject, first.status, first.language) == ("Server down", "open", "ru")
    async with gateway.transaction() as billing:
        page = await billing.list_tickets(alice)
        messages = await billing.ticket_messages(alice, first.id)
        with pytest.raises(NotFound):
            await billing.get_ticket(alice, other.id)
        with pytest.raises(NotFound):
            await billing.ticket_messages(alice, other.id)
        with pytest.raises(NotFound):
            await billing.add_customer_message(alice, other.id, "hi", reopen_window=WINDOW)
        with pytest.raises(NotFound):
            await billing.close_ticket(alice, other.id)
        with pytest.raises(NotFound):
            await billing.get_ticket(alice, 999)
    assert page.total == 2
    assert {t.id for t in page.items} == {first.id, second.id}
    assert [(x.author, x.text, x.attachments) for x in messages] == [
        ("customer", "It does not boot", [photo])
    ]


async def test_validation_rules(gateway: EmbeddedGateway) -> None:
    alice, _ = await _accounts(gateway)
    async with gateway.transaction() as billing:
        for args, code in [
            (("sales", "Subject", "text"), "department"),
            (("tech", "ab", "text"), "subject_length"),
            (("tech", "x" * 101, "text"), "subject_length"),
            (("tech", "Subject", "   "), "empty"),
            (("tech", "Subject", "x" * 3001), "text_length"),
        ]:
            with pytest.raises(ValidationFailed) as error:
                await billing.create_ticket(alice, *args)
            assert error.value.detail == code
        with pytest.raises(ValidationFailed) as error:
            await billing.create_ticket(
                alice, "tech", "Subject", "", [Attachment("photo", f"p{i}") for i in range(11)]
            )
        assert error.value.detail == "attachments"
        ok = await billing.create_ticket(
            alice, "tech", "x" * 100, "", [Attachment("document", "d")]
        )
    assert ok.subject == "x" * 100


async def test_status_flow_close_reopen_and_window(gateway: EmbeddedGateway) -> None:
    alice, _ = await _accounts(gateway)
    async with gateway.transaction() as billing:
        ticket = await billing.create_ticket(alice, "tech", "Disk", "Disk is full")
        answered = await billing.add_staff_message(ticket.id, 77, "Anna", "Cleaned it")
        note = await billing.add_staff_note(ticket.id, 77, "Anna", "customer is nervous")
        replied = await billing.add_customer_message(
            alice, ticket.id, "Thanks", reopen_window=WINDOW
        )
        closed = await billing.close_ticket(alice, ticket.id)
        with pytest.raises(AlreadyDone):
            await billing.close_ticket(alice, ticket.id)
        customer_view = await billing.ticket_messages(alice, ticket.id)
        staff_view = await billing.staff_ticket_messages(ticket.id)
    assert (answered.status, replied.status, closed.status) == (
        "answered",
        "customer_replied",
        "closed",
    )
    assert note.author == "note"
    assert [x.author for x in customer_view] == ["customer", "staff", "customer", "system"]
    assert "customer is nervous" not in [x.text for x in customer_view]
    assert [x.author for x in staff_view] == ["customer", "staff", "note", "customer", "system"]

    # A reply within the window reopens; after the window it is refused.
    async with gateway.transaction() as billing:
        reopened = await billing.add_customer_message(
            alice, ticket.id, "Again", reopen_window=WINDOW
        )
        await billing.close_ticket(alice, ticket.id)
        row = await billing.session.get(m.Ticket, ticket.id)
        assert row is not None
        row.closed_at = datetime.now(UTC) - timedelta(days=8)
    assert reopened.status == "customer_replied"
    async with gateway.transaction() as billing:
        with pytest.raises(InvalidState):
            await billing.add_customer_message(alice, ticket.id, "Late", reopen_window=WINDOW)
        with pytest.raises(InvalidState):
            await billing.reopen_ticket(alice, ticket.id, reopen_window=WINDOW)
        staff_reopened = await billing.staff_reopen_ticket(ticket.id)
        with pytest.raises(AlreadyDone):
            await billing.staff_reopen_ticket(ticket.id)
        with pytest.raises(AlreadyDone):
            await billing.reopen_ticket(alice, ticket.id, reopen_window=WINDOW)
    assert staff_reopened.status == "open"


async def test_list_puts_open_tickets_first_and_paginates(gateway: EmbeddedGateway) -> None:
    # More tickets than the per-customer limits allow (those: tests/test_user_limits.py).
    gateway.config = replace(gateway.config, max_open_tickets=0, max_tickets_per_hour=0)
    alice, _ = await _accounts(gateway)
    ids = []
    async with gateway.transaction() as billing:
        for index in range(7):
            ids.append((await billing.create_ticket(alice, "tech", f"Ticket {index}", "t")).id)
        await billing.close_ticket(alice, ids[6])  # the newest activity, but closed
    async with gateway.transaction() as billing:
        first = await billing.list_tickets(alice, 0, 5)
        second = await billing.list_tickets(alice, 5, 5)
    assert first.total == 7 and first.has_next and second.page_number == 2
    order = [t.id for t in first.items + second.items]
    assert order[-1] == ids[6]
    assert sorted(order[:-1]) == sorted(ids[:6])


async def test_staff_places_links_and_reminders(gateway: EmbeddedGateway) -> None:
    alice, _ = await _accounts(gateway)
    async with gateway.transaction() as billing:
        ticket = await billing.create_ticket(alice, "tech", "Slow", "Very slow")
        await billing.set_ticket_thread(ticket.id, -1001, 100)
        await billing.link_staff_message(-1001, 5, ticket.id)
        await billing.link_staff_message(-1001, 5, ticket.id)  # idempotent
    async with gateway.transaction() as billing:
        assert await billing.ticket_id_of_thread(-1001, 100) == ticket.id
        assert await billing.ticket_id_of_staff_message(-1001, 5) == ticket.id
        assert await billing.ticket_id_of_thread(-1001, 101) is None
        assert await billing.ticket_id_of_staff_message(-1002, 5) is None

    created = datetime.now(UTC) - timedelta(minutes=40)
    async with gateway.transaction() as billing:
        row = await billing.session.get(m.Ticket, ticket.id)
        assert row is not None
        row.updated_at = created
    now = datetime.now(UTC)
    async with gateway.transaction() as billing:
        assert await billing.tickets_awaiting_reminder(created - timedelta(minutes=1)) == []
        due = await billing.tickets_awaiting_reminder(now - timedelta(minutes=30))
        assert [t.id for t in due] == [ticket.id]
        assert await billing.was_ticket_reminded(ticket.id, created) is False
        assert await billing.mark_ticket_reminded(ticket.id, created, now) is True
        assert await billing.mark_ticket_reminded(ticket.id, created, now) is False
        assert await billing.was_ticket_reminded(ticket.id, created) is True
    async with gateway.transaction() as billing:
        assert await billing.tickets_awaiting_reminder(now) == []
        # A staff answer stops reminders; a new customer message after it starts them again.
        await billing.add_staff_message(ticket.id, 1, "Anna", "On it")
        assert await billing.tickets_awaiting_reminder(now + timedelta(days=1)) == []
        await billing.add_customer_message(alice, ticket.id, "Still slow", reopen_window=WINDOW)
        due = await billing.tickets_awaiting_reminder(datetime.now(UTC) + timedelta(minutes=1))
    assert [t.id for t in due] == [ticket.id]
    # The new wait began after the reminder: it is not reminded yet, and can be once.
    async with gateway.transaction() as billing:
        assert await billing.was_ticket_reminded(ticket.id, due[0].updated_at) is False
        later = due[0].updated_at + timedelta(minutes=31)
        assert await billing.mark_ticket_reminded(ticket.id, due[0].updated_at, later) is True
        assert await billing.mark_ticket_reminded(ticket.id, due[0].updated_at, later) is False
        assert await billing.was_ticket_reminded(ticket.id, due[0].updated_at) is True


async def test_account_summary_and_lookup(gateway: EmbeddedGateway) -> None:
    alice, _ = await _accounts(gateway)
    async with gateway.transaction() as billing:
        await billing.credit(alice, 1500, kind="topup", idempotency_key="t1")
        summary = await billing.account_summary(alice)
        assert await billing.staff_find_account(str(alice)) == alice
        assert await billing.staff_find_account(f"#{alice}") == alice
        assert await billing.staff_find_account("tg501") == alice
        assert await billing.staff_find_account("nobody") is None
        assert await billing.staff_find_account("") is None
    assert (summary.login, summary.balance_minor, summary.currency) == ("tg501", 1500, "EUR")
    assert (summary.active_orders, summary.orders, summary.telegram_name) == (0, [], "Alice")
