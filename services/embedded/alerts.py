"""The due scans of the embedded billing (BillingCore's DueScansApi).

Due scans are single SQL statements over indexed columns (orders.paid_until, the alert marks'
(order_id, period, kind)); nothing is filtered in Python.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import (
    and_,
    case,
    exists,
    func,
    literal,
    or_,
    select,
    update,
)

from services.contracts import alerts as dto
from services.contracts.orders import ACTIVE, CANCELLED, EXPIRED, SUSPENDED
from services.embedded import models as m
from services.embedded.base import REACHABLE, REACHABLE_OR_EMAILABLE
from services.embedded.renewals import RenewalsMixin

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


class DueScansMixin(RenewalsMixin):  # the renewal of what is due: services/embedded/renewals.py
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
        self, *, after_account_id: int = 0, limit: int = 500, emailable: bool = False
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
                    REACHABLE_OR_EMAILABLE if emailable else REACHABLE,
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
        emailable: bool = False,
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
        reachable = REACHABLE_OR_EMAILABLE if emailable else REACHABLE
        return await self._grouped(due, after_account_id, limit, stage, reachable=reachable)

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
        return await self._grouped(due, after_account_id, limit, None)

    async def suspension_due(
        self, now: datetime, grace: timedelta, *, limit: int = 500
    ) -> list[dto.AccountDue]:
        due = and_(m.Order.status == EXPIRED, m.Order.paid_until <= now - grace)
        return await self._grouped(due, 0, limit, None)

    async def _grouped(
        self,
        due: Any,
        after_account_id: int,
        limit: int,
        stage: Any,
        *,
        reachable: Any = None,
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
        if reachable is not None:  # which accounts can be told (None: all of them)
            accounts = accounts.where(reachable)
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
