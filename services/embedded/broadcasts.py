"""Newsletter broadcasts of the embedded bot store."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import (
    JSON,
    String,
    and_,
    cast,
    exists,
    func,
    insert,
    literal,
    select,
    update,
)

from services.contracts import alerts as dto
from services.embedded import models as m
from services.embedded.base import REACHABLE, EmbeddedBase
from services.errors import InvalidState, NotFound


class BroadcastsMixin(EmbeddedBase):
    _subscribed = and_(m.Account.newsletter.is_(True), REACHABLE)

    async def newsletter_subscriber_chat_ids(
        self, *, after_chat_id: int = 0, limit: int = 1000
    ) -> list[int]:
        rows = await self.session.scalars(
            select(m.Account.chat_id)
            .where(self._subscribed, m.Account.chat_id > after_chat_id)
            .order_by(m.Account.chat_id)
            .limit(limit)
        )
        return [chat_id for chat_id in rows if chat_id is not None]  # NULLs fail the >

    async def newsletter_subscriber_count(self) -> int:
        return int(await self.session.scalar(select(func.count()).where(self._subscribed)) or 0)

    async def create_broadcast(
        self, created_by: int, text: str, photo_file_id: str | None, language: str | None
    ) -> dto.BroadcastInfo:
        row = m.Broadcast(
            created_by=created_by,
            text=text,
            photo_file_id=photo_file_id,
            status=dto.DRAFT,
            total=0,
            language=language,
            created_at=self.now(),
        )
        self.session.add(row)
        await self.session.flush()
        return await self.get_broadcast(row.id)

    async def _broadcast_row(self, broadcast_id: int) -> m.Broadcast:
        row = await self.session.get(m.Broadcast, broadcast_id, populate_existing=True)
        if row is None:
            raise NotFound("broadcast")
        return row

    async def start_broadcast(self, broadcast_id: int, now: datetime) -> dto.BroadcastInfo:
        row = await self._broadcast_row(broadcast_id)
        if row.status != dto.DRAFT:
            raise InvalidState("broadcast_not_draft")
        if row.photo_file_id:
            method = "sendPhoto"
            payload: dict[str, Any] = {"photo": row.photo_file_id}
            if row.text:
                payload["caption"] = row.text
        else:
            method, payload = "sendMessage", {"text": row.text}
        recipients = select(
            m.Account.chat_id,
            literal(method),
            literal(payload, JSON()),
            literal(f"broadcast:{row.id}:") + cast(m.Account.chat_id, String),
            literal(dto.PENDING),
            literal(0),
            literal(now, m.UTCDateTime()),
            literal(now, m.UTCDateTime()),
            literal(row.id),
        ).where(self._subscribed)
        result = await self.session.execute(
            insert(m.OutboxMessage).from_select(
                [
                    "chat_id",
                    "method",
                    "payload",
                    "idempotency_key",
                    "status",
                    "attempts",
                    "not_before",
                    "created_at",
                    "broadcast_id",
                ],
                recipients,
            )
        )
        row.total = result.rowcount or 0  # type: ignore[attr-defined]
        row.status = dto.SENDING
        row.started_at = now
        await self.session.flush()
        return await self.get_broadcast(row.id)

    async def set_broadcast_progress_message(
        self, broadcast_id: int, chat_id: int, message_id: int
    ) -> None:
        row = await self._broadcast_row(broadcast_id)
        row.progress_chat_id, row.progress_message_id = chat_id, message_id
        await self.session.flush()

    async def get_broadcast(self, broadcast_id: int) -> dto.BroadcastInfo:
        row = await self._broadcast_row(broadcast_id)
        counts = dict(
            (
                await self.session.execute(
                    select(m.OutboxMessage.status, func.count())
                    .where(m.OutboxMessage.broadcast_id == broadcast_id)
                    .group_by(m.OutboxMessage.status)
                )
            ).all()
        )
        return dto.BroadcastInfo(
            id=row.id,
            created_by=row.created_by,
            text=row.text,
            photo_file_id=row.photo_file_id,
            status=row.status,
            total=row.total,
            sent=counts.get(dto.SENT, 0),
            failed=counts.get(dto.FAILED, 0) + counts.get(dto.UNREACHABLE, 0),
            pending=counts.get(dto.PENDING, 0),
            cancelled=counts.get(dto.CANCELLED, 0),
            language=row.language,
            progress_chat_id=row.progress_chat_id,
            progress_message_id=row.progress_message_id,
            created_at=row.created_at,
            started_at=row.started_at,
            finished_at=row.finished_at,
        )

    async def active_broadcasts(self) -> list[dto.BroadcastInfo]:
        ids = await self.session.scalars(
            select(m.Broadcast.id).where(m.Broadcast.status == dto.SENDING).order_by(m.Broadcast.id)
        )
        return [await self.get_broadcast(broadcast_id) for broadcast_id in list(ids)]

    async def cancel_broadcast(self, broadcast_id: int, now: datetime) -> dto.BroadcastInfo:
        row = await self._broadcast_row(broadcast_id)
        if row.status not in (dto.DRAFT, dto.SENDING):
            raise InvalidState("broadcast_over")
        await self.session.execute(
            update(m.OutboxMessage)
            .where(
                m.OutboxMessage.broadcast_id == broadcast_id,
                m.OutboxMessage.status == dto.PENDING,
            )
            .values(status=dto.CANCELLED, locked_until=None)
            .execution_options(synchronize_session=False)
        )
        row.status = dto.CANCELLED
        row.finished_at = now
        await self.session.flush()
        return await self.get_broadcast(broadcast_id)

    async def finish_broadcast(self, broadcast_id: int, now: datetime) -> bool:
        pending = exists().where(
            m.OutboxMessage.broadcast_id == broadcast_id,
            m.OutboxMessage.status == dto.PENDING,
        )
        result = await self.session.execute(
            update(m.Broadcast)
            .where(m.Broadcast.id == broadcast_id, m.Broadcast.status == dto.SENDING, ~pending)
            .values(status=dto.DONE, finished_at=now)
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]
