"""The staff desk's tools in the embedded bot store: which customer messages belong to which
ticket (replies and edits find their ticket), how a ticket's forum topic looks, who took a
ticket, canned answers and the customers' ratings."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import delete, select

from services.contracts.store import CannedAnswer, CustomerCopy, TicketDeskState
from services.embedded import models as m
from services.embedded.base import EmbeddedBase, insert_ignore


class DeskToolsMixin(EmbeddedBase):
    async def upsert(self, table: type[m.Base], key: dict[str, Any], **values: Any) -> None:
        """Insert the row of `key` with `values`, or set `values` on the row there is."""
        await self.session.execute(
            insert_ignore(self.session, table)
            .values(**key, **values)
            .on_conflict_do_update(index_elements=list(key), set_=values)
        )

    async def link_customer_message(self, copy: CustomerCopy) -> None:
        await self.session.execute(
            insert_ignore(self.session, m.CustomerMessageLink)
            .values(
                chat_id=copy.chat_id,
                message_id=copy.message_id,
                ticket_id=copy.ticket_id,
                staff_chat_id=copy.staff_chat_id,
                staff_message_id=copy.staff_message_id,
                content=copy.content,
            )
            .on_conflict_do_nothing()  # linked before: the same fact
        )

    async def ticket_id_of_customer_message(self, chat_id: int, message_id: int) -> int | None:
        return await self.session.scalar(
            select(m.CustomerMessageLink.ticket_id).where(
                m.CustomerMessageLink.chat_id == chat_id,
                m.CustomerMessageLink.message_id == message_id,
            )
        )

    async def customer_copies(
        self, staff_chat_id: int, staff_message_id: int
    ) -> list[CustomerCopy]:
        link = m.CustomerMessageLink
        rows = await self.session.execute(
            select(link.chat_id, link.message_id, link.ticket_id, link.content)
            .where(link.staff_chat_id == staff_chat_id, link.staff_message_id == staff_message_id)
            .order_by(link.chat_id, link.message_id)
        )
        return [CustomerCopy(r.chat_id, r.message_id, r.ticket_id, r.content) for r in rows]

    async def ticket_desk_state(self, ticket_id: int) -> TicketDeskState:
        row = await self.session.get(m.TicketDesk, ticket_id)
        if row is None:
            return TicketDeskState()
        return TicketDeskState(
            topic_title=row.topic_title,
            topic_closed=row.topic_closed,
            assignee_id=row.assignee_id,
            assignee_name=row.assignee_name,
        )

    async def set_topic_state(self, ticket_id: int, title: str, closed: bool) -> None:
        key = {"ticket_id": ticket_id}
        await self.upsert(m.TicketDesk, key, topic_title=title, topic_closed=closed)

    async def assign_ticket(self, ticket_id: int, staff_user_id: int, staff_name: str) -> None:
        key = {"ticket_id": ticket_id}
        await self.upsert(
            m.TicketDesk, key, assignee_id=staff_user_id, assignee_name=staff_name[:128]
        )

    async def assignees(self, ticket_ids: Sequence[int]) -> dict[int, str]:
        if not ticket_ids:
            return {}
        rows = await self.session.execute(
            select(m.TicketDesk.ticket_id, m.TicketDesk.assignee_name).where(
                m.TicketDesk.ticket_id.in_(list(ticket_ids)),
                m.TicketDesk.assignee_name.is_not(None),
            )
        )
        return {r.ticket_id: r.assignee_name for r in rows}

    async def canned_answers(self) -> list[CannedAnswer]:
        rows = await self.session.scalars(select(m.CannedAnswer).order_by(m.CannedAnswer.name))
        return [CannedAnswer(r.name, r.text) for r in rows]

    async def canned_answer(self, name: str) -> CannedAnswer | None:
        row = await self.session.get(m.CannedAnswer, name)
        return None if row is None else CannedAnswer(row.name, row.text)

    async def save_canned_answer(self, name: str, text: str, updated_by: int) -> bool:
        existed = await self.session.get(m.CannedAnswer, name)
        now = self.now()
        await self.upsert(
            m.CannedAnswer, {"name": name}, text=text, updated_by=updated_by, updated_at=now
        )
        return existed is None

    async def delete_canned_answer(self, name: str) -> bool:
        result = await self.session.execute(
            delete(m.CannedAnswer)
            .where(m.CannedAnswer.name == name)
            .returning(m.CannedAnswer.name)
            .execution_options(synchronize_session=False)
        )
        return result.first() is not None

    async def rate_ticket(self, ticket_id: int, account_id: int, rating: int) -> bool:
        kept = await self.session.scalar(
            insert_ignore(self.session, m.TicketRating)
            .values(ticket_id=ticket_id, account_id=account_id, rating=rating, rated_at=self.now())
            .on_conflict_do_nothing()
            .returning(m.TicketRating.ticket_id)
        )
        return kept is not None

    async def ticket_rating(self, ticket_id: int) -> int | None:
        return await self.session.scalar(
            select(m.TicketRating.rating).where(m.TicketRating.ticket_id == ticket_id)
        )
