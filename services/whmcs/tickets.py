"""Support tickets over WHMCS: the staff desk's side on top of the customer's
(tickets_customer.py).

A ticket of a WHMCS client no Telegram account is linked to is NotFound for the desk: the desk
serves the bot's customers (its header and /info are about the local account).

Staff answers are AddTicketReply with `adminusername` (WHMCS_ADMIN_USERNAMES, else
WHMCS_DEFAULT_ADMIN); before posting one the bot records its fingerprint (ECHO_KIND), so the
sync job (ticket_sync.py), which brings replies written in WHMCS's admin area to Telegram,
knows the reply as the bot's own: AddTicketReply answers no reply id we could remember.
Internal notes are AddTicketNote (posted as the API user: the staff member's name leads the
text) and come from GetTicket's `notes`, which the customer's view never reads.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from datetime import UTC, date, datetime
from typing import Any

from services.contracts.tickets import (
    AccountSummary,
    Attachment,
    LastPayment,
    OrderLine,
    Ticket,
    TicketMessage,
    checked_message,
)
from services.errors import AlreadyDone, NotFound, PermissionDenied
from services.validation import parse_id
from services.whmcs import models as wm
from services.whmcs.ticket_texts import (
    ALL_ACTIVE,
    AWAITING_REPLY,
    ECHO_KIND,
    WHMCS_CLOSED,
    WHMCS_OPEN,
    plain_text,
    utc,
    with_files_note,
)
from services.whmcs.tickets_customer import WhmcsCustomerTicketsMixin

log = logging.getLogger(__name__)

ACTIVE_SERVICE = "Active"
NO_DUE_DATE = date(1970, 1, 1)  # a free or one-time service has no next due date


class WhmcsTicketsMixin(WhmcsCustomerTicketsMixin):
    async def _staff_ticket(
        self, ticket_id: int
    ) -> tuple[Ticket, wm.Ticket, tuple[wm.TicketNote, ...]]:
        ticket, notes = await self._fetch(ticket_id)
        account_id = await self.local.account_id_of_billing_client(ticket.userid)
        if account_id is None:
            raise NotFound("ticket")
        return self._dto(ticket, account_id, await self._meta(ticket_id)), ticket, notes

    async def staff_get_ticket(self, ticket_id: int) -> Ticket:
        return (await self._staff_ticket(ticket_id))[0]

    async def staff_ticket_messages(self, ticket_id: int) -> list[TicketMessage]:
        _dto, ticket, notes = await self._staff_ticket(ticket_id)
        messages = await self._replies(ticket)
        for note in notes:
            messages.append(
                TicketMessage(
                    id=-note.note_id,  # note ids are their own sequence: negative, never a reply's
                    ticket_id=ticket.id,
                    author="note",
                    author_name=note.admin,
                    text=plain_text(note.message),
                    created_at=utc(note.posted) or _dto.created_at,
                )
            )
        messages.sort(key=lambda m: (m.created_at, m.author == "note", abs(m.id)))
        return messages

    def _admin_username(self, staff_user_id: int) -> str:
        username = self.options.admin_usernames.get(staff_user_id)
        username = username or self.options.default_admin_username
        if not username:
            log.warning(
                "staff user %s has no WHMCS admin: set WHMCS_ADMIN_USERNAMES or "
                "WHMCS_DEFAULT_ADMIN",
                staff_user_id,
            )
            raise PermissionDenied("whmcs_admin_username", setting="WHMCS_ADMIN_USERNAMES")
        return username

    async def add_staff_message(
        self,
        ticket_id: int,
        staff_user_id: int,
        author_name: str,
        text: str,
        attachments: list[Attachment] | None = None,
    ) -> Ticket:
        attachments = list(attachments or [])
        admin = self._admin_username(staff_user_id)
        text = checked_message(text, attachments)
        await self._staff_ticket(ticket_id)  # NotFound before anything is written
        message = with_files_note(text, attachments)
        await self._remember_echo(ECHO_KIND, ticket_id, message)
        await self._keep_files(ticket_id, message, attachments)
        # WHMCS's default status after an admin's reply is Answered (a closed ticket too).
        await self.client.add_ticket_reply(ticket_id, message, admin_username=admin)
        return await self.staff_get_ticket(ticket_id)

    async def add_staff_note(
        self, ticket_id: int, staff_user_id: int, author_name: str, text: str
    ) -> TicketMessage:
        text = checked_message(text, [])
        await self._staff_ticket(ticket_id)
        signed = f"{author_name}: {text}" if author_name else text
        await self.client.add_ticket_note(ticket_id, signed)
        # AddTicketNote answers no note id: 0 stands for "just added".
        return TicketMessage(
            id=0,
            ticket_id=ticket_id,
            author="note",
            author_name=author_name,
            text=signed,
            created_at=datetime.now(UTC),
            staff_user_id=staff_user_id,
        )

    async def staff_close_ticket(self, ticket_id: int) -> Ticket:
        _dto, ticket, _notes = await self._staff_ticket(ticket_id)
        if ticket.status == WHMCS_CLOSED:
            raise AlreadyDone("closed")
        await self._set_status(ticket_id, WHMCS_CLOSED)
        return await self.staff_get_ticket(ticket_id)

    async def staff_reopen_ticket(self, ticket_id: int) -> Ticket:
        _dto, ticket, _notes = await self._staff_ticket(ticket_id)
        if ticket.status != WHMCS_CLOSED:
            raise AlreadyDone("not_closed")
        await self._set_status(ticket_id, WHMCS_OPEN)
        return await self.staff_get_ticket(ticket_id)

    async def tickets_awaiting_reminder(self, waiting_since: datetime) -> list[Ticket]:
        """GetTickets "Awaiting Reply" (the statuses waiting for the support) of linked
        clients, last replied to at or before `waiting_since`. The bot's reminder marks are
        not seen here: the job asks `was_ticket_reminded`."""
        due: list[Ticket] = []
        accounts: dict[int, int | None] = {}
        async for ticket in self.client.iter_tickets(status=AWAITING_REPLY):
            dto = self._dto(ticket, 0, {})
            if dto.updated_at > waiting_since:
                continue
            if ticket.userid not in accounts:
                accounts[ticket.userid] = await self.local.account_id_of_billing_client(
                    ticket.userid
                )
            account_id = accounts[ticket.userid]
            if account_id is not None:
                due.append(replace(dto, account_id=account_id))
        due.sort(key=lambda t: (t.updated_at, t.id))
        return due

    async def staff_queue(self, limit: int = 50) -> list[Ticket]:
        """GetTickets "All Active Tickets" of linked clients (the staff desk's /queue)."""
        queue: list[Ticket] = []
        accounts: dict[int, int | None] = {}
        async for ticket in self.client.iter_tickets(status=ALL_ACTIVE):
            if ticket.userid not in accounts:
                accounts[ticket.userid] = await self.local.account_id_of_billing_client(
                    ticket.userid
                )
            account_id = accounts[ticket.userid]
            dto = self._dto(ticket, 0, {})
            if account_id is not None and dto.status != "closed":
                queue.append(replace(dto, account_id=account_id))
        queue.sort(key=lambda t: (t.updated_at, t.id))
        return queue[:limit]

    async def account_summary(self, account_id: int) -> AccountSummary:
        """The local account (Telegram identity) with the WHMCS client's name, contacts,
        credit and services. WHMCS keeps no e-mail/phone confirmation flags the bot knows of:
        the local ones are shown."""
        local = await self.local.account_summary(account_id)
        client = await self._client_of(account_id)
        services = await self.client.get_services(client.id, client.currency_code)
        orders = [
            OrderLine(
                id=s.id,
                tariff_name=s.name,
                status=s.status.lower(),
                paid_until=datetime.combine(s.nextduedate or NO_DUE_DATE, datetime.min.time(), UTC),
            )
            for s in services
        ]
        return replace(
            local,
            first_name=client.firstname or local.first_name,
            last_name=client.lastname or local.last_name,
            email=client.email or local.email,
            phone=client.phonenumber or local.phone,
            country=client.country or local.country,
            company_name=client.companyname or local.company_name,
            profile_type="company" if client.companyname else local.profile_type,
            balance_minor=client.credit_minor,
            currency=client.currency_code,
            active_orders=sum(s.status == ACTIVE_SERVICE for s in services),
            orders=orders,
            **await self._money_state(client.id, client.currency_code),
        )

    async def _money_state(self, client_id: int, currency: str) -> dict[str, Any]:
        """The client's unpaid invoices (GetInvoices status Unpaid: how many, the balance
        they still ask for) and the last paid one, as the last payment."""
        unpaid = [i async for i in self.client.iter_invoices(client_id, currency, status="Unpaid")]
        last = None
        async for paid in self.client.iter_invoices(client_id, currency, status="Paid"):
            if paid.datepaid is not None:
                last = LastPayment(paid.total_minor, paid.currency, paid.datepaid)
            break  # newest first: the first one is the last payment
        return {
            "unpaid_invoices": len(unpaid),
            "unpaid_minor": sum(i.balance_minor for i in unpaid),
            "last_payment": last,
        }

    async def staff_find_account(self, reference: str) -> int | None:
        """'#12' / '12': the account linked to WHMCS client 12; else the local lookup (a local
        account id or login)."""
        reference = reference.strip()
        client_id = parse_id(reference.lstrip("#"))
        if client_id is not None:
            account_id = await self.local.account_id_of_billing_client(client_id)
            if account_id is not None:
                return account_id
        return await self.local.staff_find_account(reference)
