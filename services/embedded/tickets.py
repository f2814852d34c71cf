"""Support tickets of the embedded billing: the customer's side and the staff desk's side."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import case, func, or_, select

from services.contracts.common import Page
from services.contracts.tickets import (
    AWAITING_STAFF,
    DEPARTMENTS,
    AccountSummary,
    Attachment,
    LastPayment,
    OrderLine,
    Ticket,
    TicketMessage,
    checked_message,
    checked_subject,
)
from services.embedded import models as m
from services.embedded.base import EmbeddedBase
from services.errors import AlreadyDone, InvalidState, LimitReached, NotFound, ValidationFailed
from services.validation import parse_id

TICKET_RATE_WINDOW = timedelta(hours=1)  # of max_tickets_per_hour


def ticket_dto(row: m.Ticket) -> Ticket:
    return Ticket(
        id=row.id,
        account_id=row.account_id,
        department=row.department,
        subject=row.subject,
        status=row.status,
        created_at=row.created_at,
        updated_at=row.updated_at,
        closed_at=row.closed_at,
        language=row.language,
    )


def message_dto(row: m.TicketMessage) -> TicketMessage:
    return TicketMessage(
        id=row.id,
        ticket_id=row.ticket_id,
        author=row.author,
        author_name=row.author_name,
        text=row.text,
        created_at=row.created_at,
        attachments=[Attachment(a["kind"], a["file_id"]) for a in row.attachments or []],
        staff_user_id=row.staff_user_id,
    )


def _files(attachments: list[Attachment]) -> list[dict[str, str]]:
    return [{"kind": a.kind, "file_id": a.file_id} for a in attachments]


class TicketsMixin(EmbeddedBase):
    # ---- helpers ---------------------------------------------------------------------------
    async def _ticket_row(self, ticket_id: int, account_id: int | None = None) -> m.Ticket:
        row = await self.session.get(m.Ticket, ticket_id, populate_existing=True)
        if row is None or (account_id is not None and row.account_id != account_id):
            raise NotFound("ticket")
        return row

    async def _add_message(
        self,
        ticket: m.Ticket,
        author: str,
        text: str,
        attachments: list[Attachment],
        *,
        author_name: str = "",
        staff_user_id: int | None = None,
        now: datetime | None = None,
    ) -> m.TicketMessage:
        row = m.TicketMessage(
            ticket_id=ticket.id,
            author=author,
            author_name=author_name[:128],
            staff_user_id=staff_user_id,
            text=text,
            attachments=_files(attachments),
            created_at=now or self.now(),
        )
        self.session.add(row)
        await self.session.flush()
        return row

    @staticmethod
    def _within(closed_at: datetime | None, now: datetime, window: timedelta) -> bool:
        return closed_at is None or now - closed_at <= window

    # ---- the customer's side ---------------------------------------------------------------
    async def create_ticket(
        self,
        account_id: int,
        department: str,
        subject: str,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        language: str | None = None,
    ) -> Ticket:
        attachments = list(attachments or [])
        if department not in DEPARTMENTS:
            raise ValidationFailed("department")
        subject = checked_subject(subject)
        text = checked_message(text, attachments)
        await self._account_row(account_id)
        await self._lock_account(account_id)  # the limits hold for concurrent calls too
        await self._check_ticket_limits(account_id)
        now = self.now()
        row = m.Ticket(
            account_id=account_id,
            department=department,
            subject=subject,
            status="open",
            created_at=now,
            updated_at=now,
            language=language,
        )
        self.session.add(row)
        await self.session.flush()
        await self._add_message(row, "customer", text, attachments, now=now)
        return ticket_dto(row)

    async def check_new_ticket(self, account_id: int) -> None:
        await self._account_row(account_id)
        await self._check_ticket_limits(account_id)

    async def _check_ticket_limits(self, account_id: int) -> None:
        open_limit, hourly_limit = self.config.max_open_tickets, self.config.max_tickets_per_hour
        mine = m.Ticket.account_id == account_id
        if open_limit:
            count = await self.session.scalar(
                select(func.count()).where(mine, m.Ticket.status != "closed")
            )
            if (count or 0) >= open_limit:
                raise LimitReached("open_tickets", open_limit)
        if hourly_limit:
            now = self.now()
            recent = (
                await self.session.scalars(
                    select(m.Ticket.created_at)
                    .where(mine, m.Ticket.created_at > now - TICKET_RATE_WINDOW)
                    .order_by(m.Ticket.created_at)
                )
            ).all()
            if len(recent) >= hourly_limit:
                # A slot frees up when enough of them have left the window.
                frees_at = recent[len(recent) - hourly_limit] + TICKET_RATE_WINDOW
                wait = math.ceil((frees_at - now).total_seconds())
                raise LimitReached("tickets_per_hour", hourly_limit, retry_after=max(1, wait))

    async def list_tickets(self, account_id: int, offset: int = 0, limit: int = 5) -> Page[Ticket]:
        where = m.Ticket.account_id == account_id
        total = await self.session.scalar(select(func.count()).where(where)) or 0
        closed_last = case((m.Ticket.status == "closed", 1), else_=0)
        rows = await self.session.scalars(
            select(m.Ticket)
            .where(where)
            .order_by(closed_last, m.Ticket.updated_at.desc(), m.Ticket.id.desc())
            .offset(offset)
            .limit(limit)
        )
        return Page([ticket_dto(r) for r in rows], total, offset, limit)

    async def get_ticket(self, account_id: int, ticket_id: int) -> Ticket:
        return ticket_dto(await self._ticket_row(ticket_id, account_id))

    async def ticket_messages(self, account_id: int, ticket_id: int) -> list[TicketMessage]:
        await self._ticket_row(ticket_id, account_id)
        return await self._messages(ticket_id, include_notes=False)

    async def _messages(self, ticket_id: int, include_notes: bool) -> list[TicketMessage]:
        query = select(m.TicketMessage).where(m.TicketMessage.ticket_id == ticket_id)
        if not include_notes:
            query = query.where(m.TicketMessage.author != "note")
        rows = await self.session.scalars(
            query.order_by(m.TicketMessage.created_at, m.TicketMessage.id)
        )
        return [message_dto(r) for r in rows]

    async def add_customer_message(
        self,
        account_id: int,
        ticket_id: int,
        text: str,
        attachments: list[Attachment] | None = None,
        *,
        reopen_window: timedelta,
    ) -> Ticket:
        attachments = list(attachments or [])
        row = await self._ticket_row(ticket_id, account_id)
        text = checked_message(text, attachments)
        now = self.now()
        if row.status == "closed":
            if not self._within(row.closed_at, now, reopen_window):
                raise InvalidState("reopen_window")
            row.closed_at = None
        row.status = "customer_replied" if row.status in ("answered", "closed") else row.status
        row.updated_at = now
        await self._add_message(row, "customer", text, attachments, now=now)
        return ticket_dto(row)

    async def close_ticket(self, account_id: int, ticket_id: int) -> Ticket:
        row = await self._ticket_row(ticket_id, account_id)
        return await self._close(row, by="customer")

    async def reopen_ticket(
        self, account_id: int, ticket_id: int, *, reopen_window: timedelta
    ) -> Ticket:
        row = await self._ticket_row(ticket_id, account_id)
        if row.status != "closed":
            raise AlreadyDone("not_closed")
        if not self._within(row.closed_at, self.now(), reopen_window):
            raise InvalidState("reopen_window")
        return await self._reopen(row, status="customer_replied")

    async def _close(self, row: m.Ticket, by: str) -> Ticket:
        if row.status == "closed":
            raise AlreadyDone("closed")
        now = self.now()
        row.status, row.closed_at, row.updated_at = "closed", now, now
        await self._add_message(row, "system", f"closed_by_{by}", [], now=now)
        return ticket_dto(row)

    async def _reopen(self, row: m.Ticket, status: str) -> Ticket:
        now = self.now()
        row.status, row.closed_at, row.updated_at = status, None, now
        await self._add_message(row, "system", "reopened", [], now=now)
        return ticket_dto(row)

    # ---- the staff desk's side -------------------------------------------------------------
    async def staff_get_ticket(self, ticket_id: int) -> Ticket:
        return ticket_dto(await self._ticket_row(ticket_id))

    async def staff_ticket_messages(self, ticket_id: int) -> list[TicketMessage]:
        await self._ticket_row(ticket_id)
        return await self._messages(ticket_id, include_notes=True)

    async def add_staff_message(
        self,
        ticket_id: int,
        staff_user_id: int,
        author_name: str,
        text: str,
        attachments: list[Attachment] | None = None,
    ) -> Ticket:
        attachments = list(attachments or [])
        row = await self._ticket_row(ticket_id)
        text = checked_message(text, attachments)
        now = self.now()
        row.status, row.closed_at, row.updated_at = "answered", None, now
        await self._add_message(
            row,
            "staff",
            text,
            attachments,
            author_name=author_name,
            staff_user_id=staff_user_id,
            now=now,
        )
        return ticket_dto(row)

    async def add_staff_note(
        self, ticket_id: int, staff_user_id: int, author_name: str, text: str
    ) -> TicketMessage:
        row = await self._ticket_row(ticket_id)
        text = checked_message(text, [])
        note = await self._add_message(
            row, "note", text, [], author_name=author_name, staff_user_id=staff_user_id
        )
        return message_dto(note)

    async def staff_close_ticket(self, ticket_id: int) -> Ticket:
        return await self._close(await self._ticket_row(ticket_id), by="staff")

    async def staff_reopen_ticket(self, ticket_id: int) -> Ticket:
        row = await self._ticket_row(ticket_id)
        if row.status != "closed":
            raise AlreadyDone("not_closed")
        return await self._reopen(row, status="open")

    async def tickets_awaiting_reminder(self, waiting_since: datetime) -> list[Ticket]:
        # The bot store's reminder marks share this database: tickets reminded about since the
        # customer last wrote are left out here already.
        rows = await self.session.scalars(
            select(m.Ticket)
            .outerjoin(m.TicketPlace, m.TicketPlace.ticket_id == m.Ticket.id)
            .where(
                m.Ticket.status.in_(AWAITING_STAFF),
                m.Ticket.updated_at <= waiting_since,
                or_(
                    m.TicketPlace.reminded_at.is_(None),
                    m.TicketPlace.reminded_at < m.Ticket.updated_at,
                ),
            )
            .order_by(m.Ticket.updated_at, m.Ticket.id)
        )
        return [ticket_dto(r) for r in rows]

    async def staff_queue(self, limit: int = 50) -> list[Ticket]:
        rows = await self.session.scalars(
            select(m.Ticket)
            .where(m.Ticket.status != "closed")
            .order_by(m.Ticket.updated_at, m.Ticket.id)
            .limit(limit)
        )
        return [ticket_dto(r) for r in rows]

    async def _money_state(self, account_id: int) -> tuple[int, int, LastPayment | None]:
        """Unpaid invoices (how many, their total in the base currency) and the last payment:
        the last paid invoice, as on WHMCS."""
        count, total = (
            await self.session.execute(
                select(func.count(), func.coalesce(func.sum(m.Invoice.credit_minor), 0)).where(
                    m.Invoice.account_id == account_id, m.Invoice.status == "unpaid"
                )
            )
        ).one()
        last = (
            await self.session.execute(
                select(m.Invoice.amount_minor, m.Invoice.currency, m.Invoice.paid_at)
                .where(
                    m.Invoice.account_id == account_id,
                    m.Invoice.status == "paid",
                    m.Invoice.paid_at.is_not(None),
                )
                .order_by(m.Invoice.paid_at.desc(), m.Invoice.id.desc())
                .limit(1)
            )
        ).first()
        if last is None or last.paid_at is None:
            return int(count), int(total), None
        return int(count), int(total), LastPayment(last.amount_minor, last.currency, last.paid_at)

    async def account_summary(self, account_id: int) -> AccountSummary:
        row = await self._account_row(account_id)
        unpaid, unpaid_minor, last_payment = await self._money_state(account_id)
        orders = (
            await self.session.scalars(
                select(m.Order)
                .where(m.Order.account_id == account_id)
                .order_by(m.Order.created_at.desc(), m.Order.id.desc())
            )
        ).all()
        return AccountSummary(
            account_id=row.id,
            login=row.login,
            telegram_id=row.telegram_id,
            telegram_name=row.telegram_name,
            telegram_username=row.telegram_username,
            first_name=row.first_name,
            last_name=row.last_name,
            email=row.email,
            email_confirmed=row.email_confirmed,
            phone=row.phone,
            phone_verified=row.phone_verified,
            country=row.country,
            profile_type=row.profile_type,
            company_name=row.company_name,
            company_verified=row.company_verified,
            balance_minor=row.balance_minor,
            currency=self.base_currency,
            unreachable=row.unreachable,
            active_orders=sum(1 for o in orders if o.status == "active"),
            orders=[
                OrderLine(
                    id=o.id, tariff_name=o.tariff.name, status=o.status, paid_until=o.paid_until
                )
                for o in orders
            ],
            unpaid_invoices=unpaid,
            unpaid_minor=unpaid_minor,
            last_payment=last_payment,
        )

    async def staff_find_account(self, reference: str) -> int | None:
        reference = reference.strip().lstrip("#")
        if not reference:
            return None
        account_id = parse_id(reference)
        if account_id is not None:
            found = await self.session.scalar(
                select(m.Account.id).where(m.Account.id == account_id)
            )
            if found is not None:
                return found
        return await self.session.scalar(select(m.Account.id).where(m.Account.login == reference))
