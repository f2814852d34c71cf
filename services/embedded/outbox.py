"""The embedded bot store's queues: the outbox, the payment inbox and job leases."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    case,
    delete,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from services.contracts import alerts as dto
from services.embedded import models as m
from services.embedded.base import INSERT_CHUNK, EmbeddedBase, dialect_name, insert_ignore


def _item(row: m.OutboxMessage) -> dto.OutboxItem:
    return dto.OutboxItem(
        id=row.id,
        chat_id=row.chat_id,
        method=row.method,
        payload=dict(row.payload),
        attempts=row.attempts,
        broadcast_id=row.broadcast_id,
        idempotency_key=row.idempotency_key,
    )


def _closed_for_telegram(error: str, email_fallback: bool) -> dict[Any, Any]:
    """The values of rows whose chat is unreachable: closed, or with `email_fallback` those
    with an e-mail copy left for the e-mail sender (their attempts counted from 0 again)."""
    row = m.OutboxMessage
    if not email_fallback:
        return {row.status: dto.UNREACHABLE, row.locked_until: None, row.error: error[:300]}
    by_email = and_(row.email_body.is_not(None), row.account_id.is_not(None))
    return {
        row.status: case((by_email, literal(dto.EMAIL_PENDING)), else_=literal(dto.UNREACHABLE)),
        row.attempts: case((by_email, literal(0)), else_=row.attempts),
        row.locked_until: None,
        row.error: error[:300],
    }


class PaymentInboxMixin(EmbeddedBase):
    async def keep_payment_update(self, charge_id: str, update_id: int, body: str) -> bool:
        kept = await self.session.scalar(
            insert_ignore(self.session, m.PaymentUpdate)
            .values(charge_id=charge_id, update_id=update_id, body=body, received_at=self.now())
            .on_conflict_do_nothing()
            .returning(m.PaymentUpdate.charge_id)
        )
        return kept is not None  # None: kept before (by this or another instance)

    async def payment_update_answered(self, charge_id: str) -> bool:
        answered = await self.session.scalar(
            select(m.PaymentUpdate.answered_at).where(m.PaymentUpdate.charge_id == charge_id)
        )
        return answered is not None

    async def mark_payment_update_answered(self, charge_id: str) -> None:
        await self.session.execute(
            update(m.PaymentUpdate)
            .where(m.PaymentUpdate.charge_id == charge_id, m.PaymentUpdate.answered_at.is_(None))
            .values(answered_at=self.now())
        )

    async def unanswered_payment_updates(self, received_before: datetime) -> list[str]:
        rows = await self.session.scalars(
            select(m.PaymentUpdate.body)
            .where(
                m.PaymentUpdate.answered_at.is_(None),
                m.PaymentUpdate.received_at < received_before,
            )
            .order_by(m.PaymentUpdate.received_at, m.PaymentUpdate.update_id)
            .limit(1000)
        )
        return list(rows)


class OutboxMixin(EmbeddedBase):
    async def enqueue_messages(self, messages: Sequence[dto.OutgoingMessage]) -> int:
        added = 0
        now = self.now()
        for start in range(0, len(messages), INSERT_CHUNK):
            rows = [
                {
                    "chat_id": message.chat_id,
                    "method": message.method,
                    "payload": message.payload,
                    "idempotency_key": message.idempotency_key,
                    "status": dto.PENDING,
                    "attempts": 0,
                    "not_before": message.not_before or now,
                    "created_at": now,
                    "broadcast_id": message.broadcast_id,
                    "account_id": message.account_id,
                    "email_subject": message.email.subject[:200] if message.email else None,
                    "email_body": message.email.body if message.email else None,
                }
                for message in messages[start : start + INSERT_CHUNK]
            ]
            result = await self.session.execute(
                insert_ignore(self.session, m.OutboxMessage)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(m.OutboxMessage.id)
            )
            added += len(result.all())
        return added

    async def enqueue_message(
        self,
        chat_id: int,
        method: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        not_before: datetime | None = None,
        broadcast_id: int | None = None,
    ) -> bool:
        message = dto.OutgoingMessage(
            chat_id, payload, method, idempotency_key, not_before, broadcast_id
        )
        return bool(await self.enqueue_messages([message]))

    async def claim_outbox(
        self,
        owner: str,
        now: datetime,
        lease: timedelta,
        limit: int = 100,
        *,
        exclude_chats: Sequence[int] = (),
        per_chat_limit: int | None = None,
        email_fallback: bool = False,
    ) -> list[dto.OutboxItem]:
        row = m.OutboxMessage
        free = and_(
            row.status == dto.PENDING,
            row.not_before <= now,
            or_(row.locked_until.is_(None), row.locked_until < now),
        )
        due = and_(free, row.chat_id.not_in(list(exclude_chats))) if exclude_chats else free
        if await self.session.scalar(select(row.id).where(due).limit(1)) is None:
            return []  # the idle path writes nothing
        await self.session.execute(
            update(row)
            .where(
                row.status == dto.PENDING,
                row.chat_id.in_(
                    select(m.Account.chat_id).where(
                        m.Account.unreachable.is_(True), m.Account.chat_id.is_not(None)
                    )
                ),
            )
            .values(_closed_for_telegram("chat unreachable", email_fallback))
            .execution_options(synchronize_session=False)
        )
        postgresql = dialect_name(self.session) == "postgresql"
        # Alerts and relays before bulk broadcasts, then oldest first.
        order = (row.broadcast_id.is_not(None), row.id)
        if per_chat_limit is None:
            candidates = select(row.id).where(due).order_by(*order).limit(limit)
            if postgresql:
                candidates = candidates.with_for_update(skip_locked=True)
            # The ids first, then the update: as a subquery of the UPDATE, PostgreSQL may run
            # the LIMIT ... SKIP LOCKED once per row of a semi-join and claim more than `limit`.
            picked = list(await self.session.scalars(candidates))
        else:
            # Each chat's first rows in the claim order, numbered per chat.
            ranked = select(
                row.id,
                row.broadcast_id,
                func.row_number().over(partition_by=row.chat_id, order_by=order).label("rank"),
            ).where(due)
            first = ranked.subquery()
            candidates = (
                select(first.c.id)
                .where(first.c.rank <= max(1, per_chat_limit))
                .order_by(first.c.broadcast_id.is_not(None), first.c.id)
                .limit(limit)
            )
            picked = list(await self.session.scalars(candidates))
            if picked and postgresql:
                # FOR UPDATE is not allowed with a window function: lock the picked rows in a
                # second step; rows another claimer holds are skipped (this claim gets fewer).
                picked = list(
                    await self.session.scalars(
                        select(row.id)
                        .where(row.id.in_(picked), free)
                        .order_by(row.id)
                        .with_for_update(skip_locked=True)
                    )
                )
        if not picked:
            return []
        claimed = await self.session.scalars(
            update(row)
            .where(row.id.in_(picked), free)
            .values(locked_by=owner, locked_until=now + lease)
            .returning(row.id)
            .execution_options(synchronize_session=False)
        )
        ids = list(claimed)
        if not ids:
            return []
        rows = await self.session.scalars(
            select(row)
            .where(row.id.in_(ids))
            .order_by(*order)
            .execution_options(populate_existing=True)
        )
        return [_item(item) for item in rows]

    def _owned(self, item_id: int, owner: str) -> Any:
        return and_(m.OutboxMessage.id == item_id, m.OutboxMessage.locked_by == owner)

    async def mark_outbox_sent(self, item_id: int, owner: str, now: datetime) -> None:
        await self.session.execute(
            update(m.OutboxMessage)
            .where(self._owned(item_id, owner))
            .values(
                status=dto.SENT,
                sent_at=now,
                attempts=m.OutboxMessage.attempts + 1,
                locked_until=None,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )

    async def mark_outbox_sent_many(self, owner: str, sent: Sequence[tuple[int, datetime]]) -> int:
        # One UPDATE per chunk, the time of each row picked by its id: an executemany would be
        # one statement too, but asyncpg reports no row count for it.
        marked = 0
        for start in range(0, len(sent), INSERT_CHUNK):
            chunk = {
                item_id: literal(at, m.OutboxMessage.sent_at.type)  # UTC, as the column keeps it
                for item_id, at in sent[start : start + INSERT_CHUNK]
            }
            result = await self.session.execute(
                update(m.OutboxMessage)
                .where(m.OutboxMessage.id.in_(list(chunk)), m.OutboxMessage.locked_by == owner)
                .values(
                    status=dto.SENT,
                    sent_at=case(chunk, value=m.OutboxMessage.id),
                    attempts=m.OutboxMessage.attempts + 1,
                    locked_until=None,
                    error=None,
                )
                .execution_options(synchronize_session=False)
            )
            marked += result.rowcount or 0  # type: ignore[attr-defined]
        return marked

    async def mark_outbox_retry(
        self, item_id: int, owner: str, not_before: datetime, error: str
    ) -> None:
        await self._retry_later(item_id, owner, dto.PENDING, not_before, error)

    async def _retry_later(
        self, item_id: int, owner: str, status: str, not_before: datetime, error: str
    ) -> None:
        """Gives the owned row (still in `status`) back, to be tried again at `not_before`."""
        await self.session.execute(
            update(m.OutboxMessage)
            .where(self._owned(item_id, owner), m.OutboxMessage.status == status)
            .values(
                attempts=m.OutboxMessage.attempts + 1,
                not_before=not_before,
                locked_until=None,
                error=error[:300],
            )
            .execution_options(synchronize_session=False)
        )

    async def mark_outbox_failed(self, item_id: int, owner: str, error: str) -> None:
        await self.session.execute(
            update(m.OutboxMessage)
            .where(self._owned(item_id, owner))
            .values(
                status=dto.FAILED,
                attempts=m.OutboxMessage.attempts + 1,
                locked_until=None,
                error=error[:300],
            )
            .execution_options(synchronize_session=False)
        )

    async def release_outbox(self, item_ids: Sequence[int], owner: str) -> None:
        if not item_ids:
            return
        await self.session.execute(
            update(m.OutboxMessage)
            .where(m.OutboxMessage.id.in_(list(item_ids)), m.OutboxMessage.locked_by == owner)
            .values(locked_until=None)
            .execution_options(synchronize_session=False)
        )

    async def mark_outbox_unreachable(
        self, item_id: int, chat_id: int, error: str, *, email_fallback: bool = False
    ) -> int:
        await self.session.execute(
            update(m.Account)
            .where(m.Account.chat_id == chat_id)
            .values(unreachable=True)
            .execution_options(synchronize_session=False)
        )
        result = await self.session.execute(
            update(m.OutboxMessage)
            .where(
                or_(
                    m.OutboxMessage.id == item_id,
                    and_(
                        m.OutboxMessage.chat_id == chat_id,
                        m.OutboxMessage.status == dto.PENDING,
                    ),
                )
            )
            .values(_closed_for_telegram(error, email_fallback))
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0  # type: ignore[attr-defined]

    # ---- alerts by e-mail (services/outbox_email.py) -----------------------------------------
    async def claim_outbox_emails(
        self, owner: str, now: datetime, lease: timedelta, limit: int = 5
    ) -> list[dto.OutboxEmail]:
        row = m.OutboxMessage
        free = and_(
            row.status == dto.EMAIL_PENDING,
            row.account_id.is_not(None),  # always set on these rows (see _closed_for_telegram)
            row.not_before <= now,
            or_(row.locked_until.is_(None), row.locked_until < now),
        )
        candidates = select(row.id).where(free).order_by(row.id).limit(limit)
        if dialect_name(self.session) == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        picked = list(await self.session.scalars(candidates))
        if not picked:
            return []  # the idle path writes nothing
        claimed = await self.session.execute(
            update(row)
            .where(row.id.in_(picked), free)
            .values(locked_by=owner, locked_until=now + lease)
            .returning(row.id, row.account_id, row.email_subject, row.email_body, row.attempts)
            .execution_options(synchronize_session=False)
        )
        return sorted(
            (
                dto.OutboxEmail(item_id, account_id, subject or "", body or "", attempts)
                for item_id, account_id, subject, body, attempts in claimed
                if account_id is not None
            ),
            key=lambda email: email.id,
        )

    async def mark_outbox_emailed(self, item_id: int, owner: str, now: datetime) -> bool:
        result = await self.session.execute(
            update(m.OutboxMessage)
            .where(self._owned(item_id, owner), m.OutboxMessage.status == dto.EMAIL_PENDING)
            .values(
                status=dto.EMAILED,
                sent_at=now,
                attempts=m.OutboxMessage.attempts + 1,
                locked_until=None,
                error=None,
            )
            .execution_options(synchronize_session=False)
        )
        return bool(result.rowcount)  # type: ignore[attr-defined]

    async def mark_outbox_email_retry(
        self, item_id: int, owner: str, not_before: datetime, error: str
    ) -> None:
        await self._retry_later(item_id, owner, dto.EMAIL_PENDING, not_before, error)

    async def mark_outbox_email_dropped(self, item_id: int, owner: str, reason: str) -> None:
        await self.session.execute(
            update(m.OutboxMessage)
            .where(self._owned(item_id, owner), m.OutboxMessage.status == dto.EMAIL_PENDING)
            .values(status=dto.UNREACHABLE, locked_until=None, error=reason[:300])
            .execution_options(synchronize_session=False)
        )

    async def outbox_counts(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(m.OutboxMessage.status, func.count()).group_by(m.OutboxMessage.status)
        )
        return {status: count for status, count in rows}


class JobLeasesMixin(EmbeddedBase):
    async def acquire_job_lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        taken = await self.session.execute(
            update(m.JobLease)
            .where(
                m.JobLease.name == name,
                or_(m.JobLease.owner == owner, m.JobLease.expires_at <= now),
            )
            .values(owner=owner, expires_at=now + ttl)
            .execution_options(synchronize_session=False)
        )
        if taken.rowcount:  # type: ignore[attr-defined]
            return True
        try:
            async with self.session.begin_nested():
                await self.session.execute(
                    insert(m.JobLease).values(name=name, owner=owner, expires_at=now + ttl)
                )
        except IntegrityError:
            return False  # another owner holds it
        return True

    async def release_job_lease(self, name: str, owner: str) -> None:
        await self.session.execute(
            delete(m.JobLease).where(m.JobLease.name == name, m.JobLease.owner == owner)
        )
