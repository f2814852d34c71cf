"""Alert scans, the outbox, job leases and broadcasts of the embedded billing.

Due scans are single SQL statements over indexed columns (orders.paid_until, the alert marks'
(order_id, period, kind)); nothing is filtered in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    JSON,
    String,
    and_,
    case,
    cast,
    delete,
    exists,
    func,
    insert,
    literal,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError

from services.contracts import alerts as dto
from services.contracts.orders import ACTIVE, CANCELLED, EXPIRED, SUSPENDED
from services.embedded import models as m
from services.embedded.base import EmbeddedBase, dialect_name, insert_ignore
from services.errors import InvalidState, NotFound

_ORDER_COLUMNS = (
    m.Order.id,
    m.Order.account_id,
    m.Tariff.name,
    m.Order.ip_address,
    m.Order.status,
    m.Order.paid_until,
    m.Order.period_months,
    m.Order.price_minor,
    m.Order.auto_renew,
)
_RECIPIENT_COLUMNS = (
    m.Account.id,
    m.Account.chat_id,
    m.Account.language,
    m.Account.timezone,
    m.Account.currency,
    m.Account.balance_minor,
)


def _due_order(row: Any, stage: int = 0) -> dto.DueOrder:
    return dto.DueOrder(
        order_id=row[0],
        account_id=row[1],
        tariff_name=row[2],
        ip_address=row[3],
        status=row[4],
        paid_until=row[5],
        period_months=row[6],
        price_minor=row[7],
        auto_renew=row[8],
        stage=stage,
    )


def _recipient(row: Any) -> dto.Recipient:
    return dto.Recipient(
        account_id=row[0],
        chat_id=row[1],
        language=row[2],
        timezone=row[3],
        currency=row[4],
        balance_minor=row[5],
    )


_CHUNK = 500  # rows per multi-row INSERT (SQLite allows 32766 bound parameters)


_reachable = and_(m.Account.chat_id.is_not(None), m.Account.unreachable.is_(False))


class AlertsMixin(EmbeddedBase):
    # ---- low balance ---------------------------------------------------------------------
    async def rearm_low_balance(self) -> int:
        result = await self.session.execute(
            update(m.Account)
            .where(
                m.Account.low_balance_alerted.is_(True),
                or_(
                    m.Account.low_balance_threshold_minor.is_(None),
                    m.Account.balance_minor >= m.Account.low_balance_threshold_minor,
                ),
            )
            .values(low_balance_alerted=False)
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0  # type: ignore[attr-defined]

    async def low_balance_due(
        self, *, after_account_id: int = 0, limit: int = 500
    ) -> list[dto.LowBalanceDue]:
        newest_entry = (
            select(func.coalesce(func.max(m.LedgerEntry.id), 0))
            .where(m.LedgerEntry.account_id == m.Account.id)
            .scalar_subquery()
        )
        rows = (
            await self.session.execute(
                select(
                    *_RECIPIENT_COLUMNS,
                    m.Account.low_balance_threshold_minor,
                    newest_entry,
                )
                .where(
                    m.Account.id > after_account_id,
                    m.Account.low_balance_threshold_minor.is_not(None),
                    m.Account.balance_minor < m.Account.low_balance_threshold_minor,
                    m.Account.low_balance_alerted.is_(False),
                    _reachable,
                )
                .order_by(m.Account.id)
                .limit(limit)
            )
        ).all()
        if not rows:
            return []
        charges = await self._upcoming_charges([row[0] for row in rows])
        return [
            dto.LowBalanceDue(
                recipient=_recipient(row),
                balance_minor=row[5],
                threshold_minor=row[6],
                crossing=row[7],
                next_charges=charges.get(row[0], [])[:3],
            )
            for row in rows
        ]

    async def _upcoming_charges(self, account_ids: list[int]) -> dict[int, list[dto.DueOrder]]:
        rows = await self.session.execute(
            select(*_ORDER_COLUMNS)
            .join(m.Tariff, m.Tariff.id == m.Order.tariff_id)
            .where(
                m.Order.account_id.in_(account_ids),
                m.Order.status == ACTIVE,
                m.Order.auto_renew.is_(True),
                m.Order.cancel_at_period_end.is_(False),
            )
            .order_by(m.Order.paid_until, m.Order.id)
        )
        charges: dict[int, list[dto.DueOrder]] = {}
        for row in rows:
            charges.setdefault(row[1], []).append(_due_order(row))
        return charges

    async def mark_low_balance_alerted(self, account_ids: Sequence[int]) -> list[int]:
        if not account_ids:
            return []
        flagged = await self.session.scalars(
            update(m.Account)
            .where(m.Account.id.in_(list(account_ids)), m.Account.low_balance_alerted.is_(False))
            .values(low_balance_alerted=True)
            .returning(m.Account.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(flagged)

    # ---- orders ---------------------------------------------------------------------------
    async def expiring_due(
        self,
        now: datetime,
        stages: Sequence[int],
        grace: timedelta,
        *,
        after_account_id: int = 0,
        limit: int = 500,
    ) -> list[dto.AccountDue]:
        days = sorted({int(d) for d in stages if int(d) > 0})
        horizon = now + timedelta(days=days[-1] if days else 0)
        stage = case(
            (m.Order.paid_until <= now, 0),
            *[(m.Order.paid_until <= now + timedelta(days=d), d) for d in days],
            else_=-1,
        )
        told = (
            exists()
            .where(
                m.AlertMark.order_id == m.Order.id,
                m.AlertMark.period == m.Order.paid_until,
                m.AlertMark.kind == dto.MARK_EXPIRY,
                m.AlertMark.stage <= stage,
            )
            .correlate(m.Order)
        )
        due = and_(
            m.Order.paid_until <= horizon,
            m.Order.paid_until > now - grace,
            m.Order.status.in_((ACTIVE, EXPIRED)),
            m.Order.cancel_at_period_end.is_(False),
            ~told,
        )
        return await self._grouped(due, after_account_id, limit, stage, reachable_only=True)

    async def renewals_due(
        self, now: datetime, lead: timedelta, *, after_account_id: int = 0, limit: int = 500
    ) -> list[dto.AccountDue]:
        failure_told = (
            exists()
            .where(
                m.AlertMark.order_id == m.Order.id,
                m.AlertMark.period == m.Order.paid_until,
                m.AlertMark.kind == dto.MARK_RENEWAL_TOLD,
            )
            .correlate(m.Order)
        )
        due = and_(
            m.Order.paid_until <= now + lead,
            m.Order.status.in_((ACTIVE, EXPIRED)),
            m.Order.auto_renew.is_(True),
            m.Order.cancel_at_period_end.is_(False),
            or_(~failure_told, m.Account.balance_minor >= m.Order.price_minor),
        )
        return await self._grouped(due, after_account_id, limit, None, reachable_only=False)

    async def suspension_due(
        self, now: datetime, grace: timedelta, *, limit: int = 500
    ) -> list[dto.AccountDue]:
        due = and_(m.Order.status == EXPIRED, m.Order.paid_until <= now - grace)
        return await self._grouped(due, 0, limit, None, reachable_only=False)

    async def _grouped(
        self,
        due: Any,
        after_account_id: int,
        limit: int,
        stage: Any,
        *,
        reachable_only: bool,
    ) -> list[dto.AccountDue]:
        """Orders matching `due`, grouped per account: the first `limit` accounts by id."""
        accounts = (
            select(m.Order.account_id)
            .join(m.Account, m.Account.id == m.Order.account_id)
            .where(due, m.Order.account_id > after_account_id)
            .group_by(m.Order.account_id)
            .order_by(m.Order.account_id)
            .limit(limit)
        )
        if reachable_only:
            accounts = accounts.where(_reachable)
        account_ids = list(await self.session.scalars(accounts))
        if not account_ids:
            return []
        columns = (*_ORDER_COLUMNS, stage if stage is not None else literal(0))
        rows = await self.session.execute(
            select(*columns)
            .join(m.Tariff, m.Tariff.id == m.Order.tariff_id)
            .join(m.Account, m.Account.id == m.Order.account_id)
            .where(due, m.Order.account_id.in_(account_ids))
            .order_by(m.Order.account_id, m.Order.paid_until, m.Order.id)
        )
        orders: dict[int, list[dto.DueOrder]] = {}
        for row in rows:
            orders.setdefault(row[1], []).append(_due_order(row, int(row[9])))
        recipients = await self.session.execute(
            select(*_RECIPIENT_COLUMNS).where(m.Account.id.in_(account_ids))
        )
        by_id = {row[0]: row for row in recipients}
        return [
            dto.AccountDue(recipient=_recipient(by_id[account_id]), orders=orders[account_id])
            for account_id in account_ids
            if account_id in orders
        ]

    async def expire_overdue_orders(self, now: datetime) -> int:
        overdue = and_(m.Order.status == ACTIVE, m.Order.paid_until <= now)
        cancelled = await self.session.execute(
            update(m.Order)
            .where(overdue, m.Order.cancel_at_period_end.is_(True))
            .values(status=CANCELLED, cancelled_at=now)
            .execution_options(synchronize_session=False)
        )
        expired = await self.session.execute(
            update(m.Order)
            .where(overdue, m.Order.cancel_at_period_end.is_(False))
            .values(status=EXPIRED)
            .execution_options(synchronize_session=False)
        )
        return (cancelled.rowcount or 0) + (expired.rowcount or 0)  # type: ignore[attr-defined]

    async def suspend_orders(
        self, order_ids: Sequence[int], now: datetime, grace: timedelta
    ) -> list[int]:
        if not order_ids:
            return []
        suspended = await self.session.scalars(
            update(m.Order)
            .where(
                m.Order.id.in_(list(order_ids)),
                m.Order.status == EXPIRED,
                m.Order.paid_until <= now - grace,
            )
            .values(status=SUSPENDED, suspended_at=now)
            .returning(m.Order.id)
            .execution_options(synchronize_session=False)
        )
        return sorted(suspended)

    # ---- alert marks ----------------------------------------------------------------------
    async def add_alert_mark(
        self,
        kind: str,
        key: str,
        *,
        order_id: int | None = None,
        period: datetime | None = None,
        stage: int | None = None,
    ) -> bool:
        spec = dto.AlertMarkSpec(kind, key, order_id, period, stage)
        return bool(await self.add_alert_marks([spec]))

    async def add_alert_marks(self, marks: Sequence[dto.AlertMarkSpec]) -> set[tuple[str, str]]:
        added: set[tuple[str, str]] = set()
        now = self.now()
        for start in range(0, len(marks), _CHUNK):
            rows = [
                {
                    "kind": mark.kind,
                    "key": mark.key,
                    "order_id": mark.order_id,
                    "period": mark.period,
                    "stage": mark.stage,
                    "created_at": now,
                }
                for mark in marks[start : start + _CHUNK]
            ]
            result = await self.session.execute(
                insert_ignore(self.session, m.AlertMark)
                .values(rows)
                .on_conflict_do_nothing()
                .returning(m.AlertMark.kind, m.AlertMark.key)
            )
            added.update((kind, key) for kind, key in result)
        return added

    async def has_alert_mark(self, kind: str, key: str) -> bool:
        found = await self.session.scalar(
            select(m.AlertMark.key).where(m.AlertMark.kind == kind, m.AlertMark.key == key)
        )
        return found is not None

    async def remove_alert_mark(self, kind: str, key: str) -> None:
        await self.session.execute(
            delete(m.AlertMark).where(m.AlertMark.kind == kind, m.AlertMark.key == key)
        )


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


class OutboxMixin(EmbeddedBase):
    # ---- incoming payment updates -----------------------------------------------------------
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

    # ---- outbox ---------------------------------------------------------------------------
    async def enqueue_messages(self, messages: Sequence[dto.OutgoingMessage]) -> int:
        added = 0
        now = self.now()
        for start in range(0, len(messages), _CHUNK):
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
                }
                for message in messages[start : start + _CHUNK]
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
        self, owner: str, now: datetime, lease: timedelta, limit: int = 100
    ) -> list[dto.OutboxItem]:
        free = and_(
            m.OutboxMessage.status == dto.PENDING,
            m.OutboxMessage.not_before <= now,
            or_(m.OutboxMessage.locked_until.is_(None), m.OutboxMessage.locked_until < now),
        )
        if await self.session.scalar(select(m.OutboxMessage.id).where(free).limit(1)) is None:
            return []  # the idle path writes nothing
        await self.session.execute(
            update(m.OutboxMessage)
            .where(
                m.OutboxMessage.status == dto.PENDING,
                m.OutboxMessage.chat_id.in_(
                    select(m.Account.chat_id).where(
                        m.Account.unreachable.is_(True), m.Account.chat_id.is_not(None)
                    )
                ),
            )
            .values(status=dto.UNREACHABLE, error="chat unreachable", locked_until=None)
            .execution_options(synchronize_session=False)
        )
        candidates = (
            select(m.OutboxMessage.id)
            .where(free)
            # Alerts and relays before bulk broadcasts, then oldest first.
            .order_by(m.OutboxMessage.broadcast_id.is_not(None), m.OutboxMessage.id)
            .limit(limit)
        )
        if dialect_name(self.session) == "postgresql":
            candidates = candidates.with_for_update(skip_locked=True)
        # The ids first, then the update: as a subquery of the UPDATE, PostgreSQL may run the
        # LIMIT ... SKIP LOCKED once per row of a semi-join and claim more than `limit`.
        picked = list(await self.session.scalars(candidates))
        if not picked:
            return []
        claimed = await self.session.scalars(
            update(m.OutboxMessage)
            .where(m.OutboxMessage.id.in_(picked), free)
            .values(locked_by=owner, locked_until=now + lease)
            .returning(m.OutboxMessage.id)
            .execution_options(synchronize_session=False)
        )
        ids = list(claimed)
        if not ids:
            return []
        rows = await self.session.scalars(
            select(m.OutboxMessage)
            .where(m.OutboxMessage.id.in_(ids))
            .order_by(m.OutboxMessage.broadcast_id.is_not(None), m.OutboxMessage.id)
            .execution_options(populate_existing=True)
        )
        return [_item(row) for row in rows]

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

    async def mark_outbox_retry(
        self, item_id: int, owner: str, not_before: datetime, error: str
    ) -> None:
        await self.session.execute(
            update(m.OutboxMessage)
            .where(self._owned(item_id, owner), m.OutboxMessage.status == dto.PENDING)
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

    async def mark_outbox_unreachable(self, item_id: int, chat_id: int, error: str) -> int:
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
            .values(status=dto.UNREACHABLE, locked_until=None, error=error[:300])
            .execution_options(synchronize_session=False)
        )
        return result.rowcount or 0  # type: ignore[attr-defined]

    async def outbox_counts(self) -> dict[str, int]:
        rows = await self.session.execute(
            select(m.OutboxMessage.status, func.count()).group_by(m.OutboxMessage.status)
        )
        return {status: count for status, count in rows}

    # ---- job leases -----------------------------------------------------------------------
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

    # ---- newsletter and broadcasts --------------------------------------------------------
    _subscribed = and_(m.Account.newsletter.is_(True), _reachable)

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
