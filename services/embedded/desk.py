"""The staff desk's part of the embedded bot store: where tickets live in the staff group,
reminders, and the limit on code-word checks (its tools: services/embedded/desk_tools.py)."""

from __future__ import annotations

import math
from datetime import datetime, timedelta

from sqlalchemy import delete, or_, select

from services.contracts.staff import CodeWordAttempt
from services.contracts.store import TicketPlace
from services.embedded import models as m
from services.embedded.base import EmbeddedBase, insert_ignore
from services.embedded.desk_tools import DeskToolsMixin
from services.errors import NotFound


class StaffDeskMixin(DeskToolsMixin, EmbeddedBase):
    async def ticket_id_of_thread(self, chat_id: int, thread_id: int) -> int | None:
        return await self.session.scalar(
            select(m.TicketPlace.ticket_id)
            .where(m.TicketPlace.chat_id == chat_id, m.TicketPlace.thread_id == thread_id)
            .order_by(m.TicketPlace.ticket_id.desc())
            .limit(1)
        )

    async def ticket_id_of_staff_message(self, chat_id: int, message_id: int) -> int | None:
        return await self.session.scalar(
            select(m.StaffMessageLink.ticket_id).where(
                m.StaffMessageLink.chat_id == chat_id,
                m.StaffMessageLink.message_id == message_id,
            )
        )

    async def ticket_place(self, ticket_id: int) -> TicketPlace | None:
        row = (
            await self.session.execute(
                select(m.TicketPlace.chat_id, m.TicketPlace.thread_id).where(
                    m.TicketPlace.ticket_id == ticket_id
                )
            )
        ).first()
        if row is None or row.chat_id is None:
            return None
        return TicketPlace(chat_id=row.chat_id, thread_id=row.thread_id)

    async def set_ticket_thread(self, ticket_id: int, chat_id: int, thread_id: int | None) -> None:
        key = {"ticket_id": ticket_id}
        await self.upsert(m.TicketPlace, key, chat_id=chat_id, thread_id=thread_id)

    async def link_staff_message(self, chat_id: int, message_id: int, ticket_id: int) -> None:
        await self.session.execute(
            insert_ignore(self.session, m.StaffMessageLink)
            .values(chat_id=chat_id, message_id=message_id, ticket_id=ticket_id)
            .on_conflict_do_nothing()  # linked before, or concurrently: the same fact
        )

    async def was_ticket_reminded(self, ticket_id: int, waiting_since: datetime) -> bool:
        reminded_at = await self.session.scalar(
            select(m.TicketPlace.reminded_at).where(m.TicketPlace.ticket_id == ticket_id)
        )
        return reminded_at is not None and reminded_at >= waiting_since

    async def mark_ticket_reminded(
        self, ticket_id: int, waiting_since: datetime, at: datetime
    ) -> bool:
        # A concurrent run waits for this row and then finds the condition false: once per wait.
        marked = await self.session.scalar(
            insert_ignore(self.session, m.TicketPlace)
            .values(ticket_id=ticket_id, reminded_at=at)
            .on_conflict_do_update(
                index_elements=[m.TicketPlace.ticket_id],
                set_={"reminded_at": at},
                where=or_(
                    m.TicketPlace.reminded_at.is_(None),
                    m.TicketPlace.reminded_at < waiting_since,
                ),
            )
            .returning(m.TicketPlace.ticket_id)
        )
        return marked is not None

    async def take_code_word_attempt(
        self, account_id: int, staff_user_id: int, *, limit: int, window: timedelta
    ) -> CodeWordAttempt:
        # The account's row is locked first: concurrent checks of one customer (several bot
        # instances on PostgreSQL) queue here and each sees the others' rows. SQLite writers
        # are one at a time anyway (BEGIN IMMEDIATE).
        found = await self.session.scalar(
            select(m.Account.id).where(m.Account.id == account_id).with_for_update()
        )
        if found is None:
            raise NotFound("account")
        now = self.now()
        since = now - window
        table = m.CodeWordCheck
        await self.session.execute(
            delete(table)
            .where(table.account_id == account_id, table.checked_at <= since)
            .execution_options(synchronize_session=False)
        )
        rows = (
            await self.session.execute(
                select(table.id, table.checked_at, table.refused)
                .where(table.account_id == account_id)
                .order_by(table.id)
            )
        ).all()
        counted = [row for row in rows if not row.refused]
        if len(counted) < limit:
            self.session.add(
                table(account_id=account_id, staff_user_id=staff_user_id, checked_at=now)
            )
            await self.session.flush()
            return CodeWordAttempt(
                allowed=True, left=limit - len(counted) - 1, retry_after_seconds=0
            )
        # Possible again once enough of the counted checks have left the window.
        frees_at = counted[len(counted) - limit].checked_at + window
        retry_after = max(1, math.ceil((frees_at - now).total_seconds()))
        last_allowed = counted[-1].id
        told = any(row.refused and row.id > last_allowed for row in rows)
        if not told:  # one refused row per lockout is enough to remember that staff were told
            self.session.add(
                table(
                    account_id=account_id, staff_user_id=staff_user_id, checked_at=now, refused=True
                )
            )
            await self.session.flush()
        return CodeWordAttempt(
            allowed=False, left=0, retry_after_seconds=retry_after, first_refusal=not told
        )
