"""Orders of the embedded billing: list/search/sort, renewals, tariff changes, cancellation,
and new orders with an IP from the pool (the cart is in services/embedded/carts.py).

Concurrency: every money action first locks the row it changes (`SELECT ... FOR UPDATE` on
PostgreSQL; SQLite serializes writers with BEGIN IMMEDIATE), re-reads it, then posts to the
ledger with an idempotency key, so repeated or concurrent confirmations debit once.

Prorating of a tariff change (also in README.md, "Orders rules"): the difference between the
new tariff's price for the order's period and the price the customer paid, times the share of
the paid period that is left. The days left are the ones every screen shows (a started day
counts as one, `Order.days_left`), the same figure for an upgrade and a downgrade; a charge is
rounded up to the minor unit and a credit rounded down, so changing up and straight back never
makes money. Paid-until never moves on a tariff change.
"""

from __future__ import annotations

import calendar
import functools
import ipaddress
import math
from datetime import datetime
from decimal import ROUND_CEILING, Decimal
from typing import Any

from sqlalchemy import (
    ColumnElement,
    Float,
    Select,
    bindparam,
    case,
    cast,
    func,
    or_,
    select,
    update,
)
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import contains_eager

from services.contracts import orders as dto
from services.contracts.common import Page
from services.embedded import models as m
from services.embedded.accounts import LedgerMixin
from services.errors import InvalidState, NotFound, ValidationFailed
from services.validation import parse_id

MAX_QUERY_LENGTH = 64
_STATUS_ORDER = {dto.ACTIVE: 0, dto.PENDING: 1, dto.SUSPENDED: 2, dto.EXPIRED: 3, dto.CANCELLED: 4}
_SORT_COLUMNS: dict[str, Any] = {  # column expressions, built once
    "created": m.Order.created_at,
    "status": case(_STATUS_ORDER, value=m.Order.status, else_=9),
    # per month, as Order.monthly_price_minor (every embedded order has a period)
    "cost": cast(m.Order.price_minor, Float) / m.Order.period_months,
    "paid_until": m.Order.paid_until,
}


def _matching(where: list[ColumnElement[bool]], joined: bool) -> Select[Any]:
    matching = select(func.count()).select_from(m.Order).where(*where)
    return matching.join(m.Order.tariff) if joined else matching


def _page_statement(
    where: list[ColumnElement[bool]], sort: str, descending: bool, joined: bool
) -> Select[Any]:
    """One statement: the page (the (account, created) index serves the default order
    without sorting every order), its tariffs joined once, and the count of all matches as an
    uncorrelated subquery, computed once. Offset and limit are bound parameters."""
    column = _SORT_COLUMNS[sort]
    ordering = [column.desc(), m.Order.id.desc()] if descending else [column.asc(), m.Order.id]
    return (
        select(m.Order, _matching(where, joined).correlate(None).scalar_subquery())
        .join(m.Order.tariff)
        .options(contains_eager(m.Order.tariff).lazyload(m.Tariff.prices))
        .where(*where)
        .order_by(*ordering)
        .offset(bindparam("offset"))
        .limit(bindparam("limit"))
    )


_OF_ACCOUNT = m.Order.account_id == bindparam("account_id")


@functools.cache
def _unfiltered_page(sort: str, descending: bool) -> Select[Any]:
    """The page statement of a list without a search, built once per order (building it is
    most of the call's CPU; the compiled SQL is cached by SQLAlchemy either way)."""
    return _page_statement([_OF_ACCOUNT], sort, descending, joined=False)


def add_months(value: datetime, months: int) -> datetime:
    """Calendar months (negative too); the day is clamped to the end of a shorter month."""
    index = value.month - 1 + months
    year, month = value.year + index // 12, index % 12 + 1
    day = min(value.day, calendar.monthrange(year, month)[1])
    return value.replace(year=year, month=month, day=day)


def order_dto(row: m.Order) -> dto.Order:
    return dto.Order(
        id=row.id,
        account_id=row.account_id,
        tariff_id=row.tariff_id,
        tariff_name=row.tariff.name,
        product_type=row.tariff.product_type,
        status=row.status,
        ip_address=row.ip_address,
        released_ip=row.released_ip,
        period_months=row.period_months,
        price_minor=row.price_minor,
        created_at=row.created_at,
        paid_until=row.paid_until,
        # The column keeps the customer's auto-renew choice through a cancellation scheduled
        # for the period end (which stops renewals by itself), so "Keep the order" restores it.
        auto_renew=row.auto_renew and not row.cancel_at_period_end,
        cancel_at_period_end=row.cancel_at_period_end,
        cancelled_at=row.cancelled_at,
    )


def prorate(
    old_price: int, new_price: int, paid_until: datetime, period_months: int, now: datetime
) -> tuple[int, int, int]:
    """(amount, remaining_days, period_days): amount > 0 is charged, < 0 credited back."""
    period_days = max(1, (paid_until - add_months(paid_until, -period_months)).days)
    seconds = max(0.0, (paid_until - now).total_seconds())
    # The days left as the screens and lists show them (Order.days_left): a started day is a
    # day, the same count for both directions.
    days = math.ceil(seconds / 86400)
    # Rounding towards plus infinity: a charge rounds up, a credit (a negative amount) rounds
    # down in size, so an upgrade and the downgrade straight back never leave a gain.
    amount = (Decimal(new_price - old_price) * days / period_days).to_integral_value(ROUND_CEILING)
    return int(amount), days, period_days


class OrdersMixin(LedgerMixin):  # orders are paid from the ledger
    # ---- reading --------------------------------------------------------------------------
    async def _order_row(self, account_id: int, order_id: int, *, lock: bool = False) -> m.Order:
        query = select(m.Order).where(m.Order.id == order_id, m.Order.account_id == account_id)
        if lock:
            query = query.with_for_update(of=m.Order)
        row = await self.session.scalar(query.execution_options(populate_existing=True))
        if row is None:
            raise NotFound("order")
        return row

    async def _balance(self, account_id: int) -> int:
        balance = await self.session.scalar(
            select(m.Account.balance_minor).where(m.Account.id == account_id)
        )
        if balance is None:
            raise NotFound("account")
        return int(balance)

    async def _tariff_row(self, tariff_id: int, *, active_only: bool = True) -> m.Tariff:
        row = await self.session.get(m.Tariff, tariff_id)
        if row is None or (active_only and not row.active):
            raise NotFound("tariff")
        return row

    @staticmethod
    def _price(tariff: m.Tariff, months: int) -> int:
        price = next((p.price_minor for p in tariff.prices if p.months == months), None)
        if price is None:
            raise ValidationFailed("period_not_offered", months=months)
        return price

    async def list_orders(
        self,
        account_id: int,
        *,
        query: str | None = None,
        sort: str = "created",
        descending: bool = True,
        offset: int = 0,
        limit: int = 5,
    ) -> Page[dto.Order]:
        if sort not in dto.SORT_KEYS:
            raise ValidationFailed("unknown_sort")
        text = (query or "").strip()[:MAX_QUERY_LENGTH].lower()
        offset = max(0, offset)
        where = [_OF_ACCOUNT]
        if text:
            matches = [
                func.lower(m.Tariff.name).contains(text, autoescape=True),
                func.coalesce(m.Order.ip_address, "").contains(text, autoescape=True),
            ]
            number = parse_id(text)
            if number is not None:
                matches.append(m.Order.id == number)
            where.append(or_(*matches))
            page = _page_statement(where, sort, descending, joined=True)
        else:
            page = _unfiltered_page(sort, descending)
        params = {"account_id": account_id, "offset": offset, "limit": limit}
        found = (await self.session.execute(page, params)).all()
        if found:
            total = int(found[0][1])
        elif offset == 0:
            total = 0
        else:  # past the end: the total still tells the caller where the last page is
            matching = _matching(where, joined=bool(text))
            total = int(await self.session.scalar(matching, params) or 0)
        return Page([order_dto(row) for row, _ in found], total, offset, limit)

    async def get_order(self, account_id: int, order_id: int) -> dto.Order:
        return order_dto(await self._order_row(account_id, order_id))

    # ---- renewal --------------------------------------------------------------------------
    def _renewal_start(self, row: m.Order, now: datetime) -> datetime:
        return row.paid_until if row.paid_until > now else now.replace(microsecond=0)

    async def renewal_options(self, account_id: int, order_id: int) -> list[dto.Quote]:
        row = await self._order_row(account_id, order_id)
        if row.status not in dto.RENEWABLE:
            raise InvalidState("not_renewable", status=row.status)
        tariff = await self._tariff_row(row.tariff_id, active_only=False)
        balance = await self._balance(account_id)
        return [self._renewal_quote(row, tariff, p.months, balance) for p in tariff.prices]

    async def quote_renewal(self, account_id: int, order_id: int, months: int) -> dto.Quote:
        row = await self._order_row(account_id, order_id)
        if row.status not in dto.RENEWABLE:
            raise InvalidState("not_renewable", status=row.status)
        tariff = await self._tariff_row(row.tariff_id, active_only=False)
        return self._renewal_quote(row, tariff, months, await self._balance(account_id))

    def _renewal_quote(
        self, row: m.Order, tariff: m.Tariff, months: int, balance: int
    ) -> dto.Quote:
        price = self._price(tariff, months)
        return dto.Quote(
            amount_minor=price,
            balance_minor=balance,
            currency=self.base_currency,
            tariff_id=tariff.id,
            tariff_name=tariff.name,
            months=months,
            paid_until=add_months(self._renewal_start(row, self.now()), months),
            price_minor=price,
        )

    async def renew_order(
        self,
        account_id: int,
        order_id: int,
        months: int,
        *,
        idempotency_key: str | None = None,
        period_start: datetime | None = None,
    ) -> dto.Order:
        row = await self._order_row(account_id, order_id, lock=True)
        if period_start is not None and row.paid_until != period_start:
            return order_dto(row)  # the period the user confirmed is already paid
        key = idempotency_key or dto.renewal_key(row.id, row.paid_until)
        if await self._key_used(key):
            return order_dto(row)
        if row.status not in dto.RENEWABLE:
            raise InvalidState("not_renewable", status=row.status)
        tariff = await self._tariff_row(row.tariff_id, active_only=False)
        price = self._price(tariff, months)
        now = self.now()
        new_paid_until = add_months(self._renewal_start(row, now), months)
        line = await self.debit(
            account_id,
            price,
            kind="renewal",
            description=f"Renewal of order #{row.id} ({tariff.name}) for {months} mo.",
            reference=f"order:{row.id}",
            idempotency_key=key,
        )
        if line is None:  # the same period was renewed concurrently
            return order_dto(await self._order_row(account_id, order_id))
        row.paid_until = new_paid_until
        row.period_months = months
        row.price_minor = price
        row.status = dto.ACTIVE
        row.suspended_at = None
        if row.cancel_at_period_end:  # renewing keeps the order; auto-renew stays off as shown
            row.auto_renew = False
            row.cancel_at_period_end = False
        await self.session.flush()
        return order_dto(row)

    # ---- tariff change --------------------------------------------------------------------
    def _check_changeable(self, row: m.Order) -> None:
        if row.status != dto.ACTIVE or row.paid_until <= self.now():
            raise InvalidState("not_changeable", status=row.status)

    async def _change_quote(self, row: m.Order, tariff: m.Tariff, balance: int) -> dto.Quote:
        if tariff.product_type != row.tariff.product_type:
            raise ValidationFailed("other_product_type")
        new_price = self._price(tariff, row.period_months)
        amount, days, period_days = prorate(
            row.price_minor, new_price, row.paid_until, row.period_months, self.now()
        )
        return dto.Quote(
            amount_minor=amount,
            balance_minor=balance,
            currency=self.base_currency,
            tariff_id=tariff.id,
            tariff_name=tariff.name,
            months=row.period_months,
            paid_until=row.paid_until,
            price_minor=new_price,
            remaining_days=days,
            period_days=period_days,
        )

    async def change_tariff_options(self, account_id: int, order_id: int) -> list[dto.Quote]:
        row = await self._order_row(account_id, order_id)
        self._check_changeable(row)
        balance = await self._balance(account_id)
        tariffs = await self.session.scalars(
            select(m.Tariff)
            .where(
                m.Tariff.active,
                m.Tariff.product_type == row.tariff.product_type,
                m.Tariff.id != row.tariff_id,
            )
            .order_by(m.Tariff.sort, m.Tariff.id)
        )
        return [
            await self._change_quote(row, t, balance)
            for t in tariffs
            if any(p.months == row.period_months for p in t.prices)
        ]

    async def quote_tariff_change(
        self, account_id: int, order_id: int, tariff_id: int
    ) -> dto.Quote:
        row = await self._order_row(account_id, order_id)
        self._check_changeable(row)
        if row.tariff_id == tariff_id:
            raise InvalidState("same_tariff")
        tariff = await self._tariff_row(tariff_id)
        return await self._change_quote(row, tariff, await self._balance(account_id))

    async def change_tariff(
        self,
        account_id: int,
        order_id: int,
        tariff_id: int,
        *,
        expected_amount_minor: int | None = None,
    ) -> dto.Order:
        row = await self._order_row(account_id, order_id, lock=True)
        self._check_changeable(row)
        if row.tariff_id == tariff_id:
            raise InvalidState("same_tariff")
        tariff = await self._tariff_row(tariff_id)
        quote = await self._change_quote(row, tariff, await self._balance(account_id))
        if expected_amount_minor is not None and quote.amount_minor != expected_amount_minor:
            raise ValidationFailed("quote_changed", amount_minor=quote.amount_minor)
        description = f"Order #{row.id}: {row.tariff.name} → {tariff.name}"
        if quote.amount_minor > 0:
            await self.debit(
                account_id,
                quote.amount_minor,
                kind="upgrade",
                description=description,
                reference=f"order:{row.id}",
            )
        elif quote.amount_minor < 0:
            await self.credit(
                account_id,
                -quote.amount_minor,
                kind="refund",
                description=description,
                reference=f"order:{row.id}",
            )
        row.tariff_id = tariff.id
        row.tariff = tariff
        row.price_minor = self._price(tariff, row.period_months)
        await self.session.flush()
        return order_dto(row)

    # ---- cancel, resume, auto-renew -------------------------------------------------------
    async def cancel_order(self, account_id: int, order_id: int, *, immediately: bool) -> dto.Order:
        row = await self._order_row(account_id, order_id, lock=True)
        if row.status == dto.CANCELLED:
            raise InvalidState("cancelled")
        now = self.now()
        if immediately:
            row.status = dto.CANCELLED
            row.cancelled_at = now
            row.released_ip, row.ip_address = row.ip_address, None  # back to the pool
            row.auto_renew = False
            row.cancel_at_period_end = False
        else:
            if row.status != dto.ACTIVE or row.paid_until <= now:
                raise InvalidState("period_over")
            row.cancel_at_period_end = True  # auto_renew is kept for resume_order
        await self.session.flush()
        return order_dto(row)

    async def resume_order(self, account_id: int, order_id: int) -> dto.Order:
        row = await self._order_row(account_id, order_id, lock=True)
        if row.status == dto.CANCELLED or not row.cancel_at_period_end:
            raise InvalidState("not_scheduled")
        row.cancel_at_period_end = False  # auto-renew is back as it was before the cancellation
        await self.session.flush()
        return order_dto(row)

    async def set_order_auto_renew(
        self, account_id: int, order_id: int, enabled: bool
    ) -> dto.Order:
        row = await self._order_row(account_id, order_id, lock=True)
        if enabled and (row.status == dto.CANCELLED or row.cancel_at_period_end):
            raise InvalidState("cancelled")
        row.auto_renew = enabled
        await self.session.flush()
        return order_dto(row)

    # ---- new orders -----------------------------------------------------------------------
    async def quote_new_order(self, account_id: int, tariff_id: int, months: int) -> dto.Quote:
        tariff = await self._tariff_row(tariff_id)
        price = self._price(tariff, months)
        return dto.Quote(
            amount_minor=price,
            balance_minor=await self._balance(account_id),
            currency=self.base_currency,
            tariff_id=tariff.id,
            tariff_name=tariff.name,
            months=months,
            paid_until=add_months(self.now().replace(microsecond=0), months),
            price_minor=price,
        )

    async def _order_by_key(self, account_id: int, key: str) -> dto.Order | None:
        reference = await self.session.scalar(
            select(m.LedgerEntry.reference).where(
                m.LedgerEntry.idempotency_key == key, m.LedgerEntry.account_id == account_id
            )
        )
        if reference is None:
            return None
        _, _, order_id = reference.partition(":")
        return await self.get_order(account_id, int(order_id))

    async def place_order(
        self, account_id: int, tariff_id: int, months: int, *, idempotency_key: str | None = None
    ) -> dto.Order:
        await self._lock_account(account_id)  # one money action per account at a time
        if idempotency_key:
            existing = await self._order_by_key(account_id, idempotency_key)
            if existing is not None:
                return existing
        tariff = await self._tariff_row(tariff_id)
        price = self._price(tariff, months)
        await self._raise_if_short(account_id, price)
        now = self.now().replace(microsecond=0)
        row = m.Order(
            account_id=account_id,
            tariff_id=tariff.id,
            tariff=tariff,
            status=dto.PENDING,
            period_months=months,
            price_minor=price,
            created_at=now,
            paid_until=add_months(now, months),
            auto_renew=(await self._account_row(account_id)).auto_renew_default,
        )
        self.session.add(row)
        await self.session.flush()
        line = await self.debit(
            account_id,
            price,
            kind="order",
            description=f"Order #{row.id}: {tariff.name} for {months} mo.",
            reference=f"order:{row.id}",
            idempotency_key=idempotency_key,
        )
        if line is None:  # the same key won concurrently: forget this row, return that order
            await self.session.delete(row)
            await self.session.flush()
            existing = await self._order_by_key(account_id, idempotency_key or "")
            if existing is None:
                raise InvalidState("duplicate")
            return existing
        await self._assign_ip(row)
        row.status = dto.ACTIVE
        await self.session.flush()
        return order_dto(row)

    async def _raise_if_short(self, account_id: int, price: int) -> None:
        balance = await self._balance(account_id)
        if balance < price:
            await self._raise_insufficient(account_id, price)

    async def _assign_ip(self, row: m.Order) -> None:
        """The first free address of the configured pool (retried if taken concurrently)."""
        first, last = self.config.ip_pool_range()
        order_id = row.id
        for _attempt in range(20):
            used = set(
                (
                    await self.session.scalars(
                        select(m.Order.ip_address).where(
                            m.Order.ip_address.is_not(None), m.Order.id != order_id
                        )
                    )
                ).all()
            )
            address = next(
                (
                    str(ipaddress.IPv4Address(n))
                    for n in range(int(first), int(last) + 1)
                    if str(ipaddress.IPv4Address(n)) not in used
                ),
                None,
            )
            if address is None:
                raise InvalidState("ip_pool_exhausted")
            try:
                async with self.session.begin_nested():
                    await self.session.execute(
                        update(m.Order)
                        .where(m.Order.id == order_id)
                        .values(ip_address=address)
                        .execution_options(synchronize_session=False)
                    )
            except IntegrityError:  # taken by a concurrent order: look again
                continue
            await self.session.refresh(row)
            return
        raise InvalidState("ip_pool_busy")
