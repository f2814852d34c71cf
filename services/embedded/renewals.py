"""Set-based auto-renewal of the embedded billing (BillingCore's `renew_due_orders`).

A batch of due orders is renewed in a fixed handful of statements, however many orders it has:

1. the orders are read and locked (`FOR UPDATE` on PostgreSQL, in id order like every other
   writer of an order; SQLite writers hold the database's write lock from BEGIN IMMEDIATE),
   with the price of their period, then the ledger keys of their periods that are used
   already, then the balances of their accounts, locked the same way;
2. Python decides, per account in the order given, which orders the balance covers, and what
   each ledger line's balance after it is;
3. one INSERT of the ledger lines (executemany), keyed renewal_key(order, paid-until): the
   unique key is the guard against a second charge of a period, whoever else renews it;
4. one conditional UPDATE of the balances (compare-and-set on the balance read in 1, so it
   can neither overdraw nor lose a concurrent change) and one UPDATE of the orders, guarded by
   the paid-until of the scan;
5. the balances are read back: anything that did not go exactly as planned raises
   RenewalConflict and the caller's transaction rolls back whole (nothing is charged; the
   next run tries again).

The renewal itself follows `OrdersMixin.renew_order` (services/embedded/orders.py): the price
of the tariff for the order's period, paid-until extended from paid-until while it is ahead,
else from now; the order becomes active again and its cancellation/suspension is cleared.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any

from sqlalchemy import Table, and_, bindparam, select, update

from services.contracts import alerts as dto
from services.contracts.orders import ACTIVE, RENEWABLE, renewal_key
from services.embedded import models as m
from services.embedded.base import EmbeddedBase, insert_ignore
from services.embedded.orders import add_months

LOCK_CHUNK = 500  # ids per IN (...) of the reads


class RenewalConflict(RuntimeError):
    """A write of the batch did not do what was planned under the locks: roll back."""


@dataclass(frozen=True, slots=True)
class _Current:
    """An order as it is now, with the price of its period (None: not offered)."""

    account_id: int
    status: str
    paid_until: datetime
    period_months: int
    auto_renew: bool
    cancel_at_period_end: bool
    tariff_name: str
    price_minor: int | None


def _chunks(values: Sequence[Any]) -> list[list[Any]]:
    return [list(values[i : i + LOCK_CHUNK]) for i in range(0, len(values), LOCK_CHUNK)]


def _table(model: type[m.Base]) -> Table:
    """The model's Core table: the batch updates are executemany with their own WHERE (Core),
    which ORM-enabled UPDATEs of a list of parameter sets are not (bulk by primary key)."""
    table = model.__table__
    assert isinstance(table, Table)
    return table


_ORDERS = _table(m.Order)
_ACCOUNTS = _table(m.Account)

# Statements built once; executed with a list of parameter sets (executemany).
_SET_BALANCE = (
    update(_ACCOUNTS)
    .where(
        _ACCOUNTS.c.id == bindparam("r_account"),
        _ACCOUNTS.c.balance_minor == bindparam("r_before"),
    )
    .values(balance_minor=bindparam("r_after"))
)
_EXTEND_ORDER = (
    update(_ORDERS)
    .where(
        _ORDERS.c.id == bindparam("r_order"),
        _ORDERS.c.paid_until == bindparam("r_from", type_=_ORDERS.c.paid_until.type),
    )
    .values(
        paid_until=bindparam("r_until", type_=_ORDERS.c.paid_until.type),
        period_months=bindparam("r_months"),
        price_minor=bindparam("r_price"),
        status=ACTIVE,
        suspended_at=None,
        cancel_at_period_end=False,
    )
)


def _changed(order: dto.DueOrder, row: _Current) -> bool:
    """Changed since the scan: renewed by hand, auto-renewal switched off, set to cancel..."""
    return (
        row.account_id != order.account_id
        or row.paid_until != order.paid_until
        or row.status != order.status
        or row.period_months != order.period_months
        or not row.auto_renew
        or row.cancel_at_period_end
    )


def _refusal(row: _Current) -> str:
    if row.status not in RENEWABLE:
        return "not_renewable"
    return "period_not_offered" if row.price_minor is None else "not_positive"


def _decide(
    order: dto.DueOrder, row: _Current | None, paid: bool, balances: dict[int, int], now: datetime
) -> dto.RenewalResult:
    """The outcome of one order; a renewal takes its price from `balances` (in order given)."""
    if row is None or paid or _changed(order, row):
        return dto.RenewalResult(order.order_id, dto.RENEWAL_SKIPPED)
    price = row.price_minor
    if row.status not in RENEWABLE or price is None or price <= 0:
        return dto.RenewalResult(order.order_id, dto.RENEWAL_FAILED, error=_refusal(row))
    balance = balances[order.account_id]
    if balance < price:
        missing = price - balance
        return dto.RenewalResult(order.order_id, dto.RENEWAL_SHORT, None, price, missing)
    balances[order.account_id] = balance - price
    start = row.paid_until if row.paid_until > now else now.replace(microsecond=0)
    until = add_months(start, row.period_months)
    return dto.RenewalResult(order.order_id, dto.RENEWAL_DONE, until, price)


def _extension(order: dto.DueOrder, row: _Current, result: dto.RenewalResult) -> dict[str, Any]:
    """The parameters of _EXTEND_ORDER for a renewed order."""
    return {
        "r_order": order.order_id,
        "r_from": row.paid_until,
        "r_until": result.paid_until,
        "r_months": row.period_months,
        "r_price": result.price_minor,
    }


def _told_balance(result: dto.RenewalResult, balance: int) -> dto.RenewalResult:
    """A short result carries the account's balance once the batch is done."""
    if result.outcome != dto.RENEWAL_SHORT:
        return result
    return replace(result, balance_minor=balance)


class RenewalsMixin(EmbeddedBase):
    async def renew_due_orders(self, orders: Sequence[dto.DueOrder]) -> list[dto.RenewalResult]:
        if not orders:
            return []
        current = await self._lock_orders(sorted({o.order_id for o in orders}))
        keys = {o.order_id: renewal_key(o.order_id, o.paid_until) for o in orders}
        used = await self._used_keys(list(keys.values()))
        balances = await self._lock_balances(sorted({o.account_id for o in orders}))
        before, now = dict(balances), self.now()
        results: list[dto.RenewalResult] = []
        lines: list[dict[str, Any]] = []
        extended: list[dict[str, Any]] = []
        for order in orders:
            row, key = current.get(order.order_id), keys[order.order_id]
            result = _decide(order, row, key in used, balances, now)
            results.append(result)
            if result.outcome == dto.RENEWAL_DONE:
                assert row is not None
                lines.append(self._ledger_line(order, row, key, balances[order.account_id], now))
                extended.append(_extension(order, row, result))
        if lines:
            await self._write(lines, extended, before, balances)
        return [
            _told_balance(result, balances[order.account_id])
            for order, result in zip(orders, results, strict=True)
        ]

    def _ledger_line(
        self, order: dto.DueOrder, row: _Current, key: str, balance_after: int, now: datetime
    ) -> dict[str, Any]:
        assert row.price_minor is not None
        description = (
            f"Renewal of order #{order.order_id} ({row.tariff_name}) for {row.period_months} mo."
        )
        return {
            "account_id": order.account_id,
            "amount_minor": -row.price_minor,
            "currency": self.base_currency,
            "balance_after_minor": balance_after,
            "kind": "renewal",
            "description": description[:300],
            "reference": f"order:{order.order_id}",
            "idempotency_key": key,
            "actor": None,
            "created_at": now,
        }

    # ---- reads under the locks -------------------------------------------------------------
    async def _lock_orders(self, order_ids: list[int]) -> dict[int, _Current]:
        price = m.TariffPrice
        found: dict[int, _Current] = {}
        for ids in _chunks(order_ids):
            rows = await self.session.execute(
                select(
                    m.Order.id,
                    m.Order.account_id,
                    m.Order.status,
                    m.Order.paid_until,
                    m.Order.period_months,
                    m.Order.auto_renew,
                    m.Order.cancel_at_period_end,
                    m.Tariff.name,
                    price.price_minor,
                )
                .join(m.Tariff, m.Tariff.id == m.Order.tariff_id)
                .outerjoin(
                    price,
                    and_(
                        price.tariff_id == m.Order.tariff_id, price.months == m.Order.period_months
                    ),
                )
                .where(m.Order.id.in_(ids))
                .order_by(m.Order.id)
                .with_for_update(of=m.Order)
            )
            for row in rows:
                found[row[0]] = _Current(*row[1:])
        return found

    async def _used_keys(self, keys: list[str]) -> set[str]:
        used: set[str] = set()
        for part in _chunks(keys):
            used.update(
                await self.session.scalars(
                    select(m.LedgerEntry.idempotency_key).where(
                        m.LedgerEntry.idempotency_key.in_(part)
                    )
                )
            )
        return used

    async def _lock_balances(self, account_ids: list[int]) -> dict[int, int]:
        balances: dict[int, int] = {}
        for ids in _chunks(account_ids):
            rows = await self.session.execute(
                select(m.Account.id, m.Account.balance_minor)
                .where(m.Account.id.in_(ids))
                .order_by(m.Account.id)
                .with_for_update(of=m.Account)
            )
            balances.update((account_id, int(balance)) for account_id, balance in rows)
        return balances

    # ---- the writes ------------------------------------------------------------------------
    async def _write(
        self,
        lines: list[dict[str, Any]],
        extended: list[dict[str, Any]],
        before: dict[int, int],
        after: dict[int, int],
    ) -> None:
        if await self._post_renewals(lines) != len(
            lines
        ):  # a key was posted concurrently (the guard held)
            raise RenewalConflict("a renewal period was charged concurrently")
        changed = [a for a in after if after[a] != before[a]]
        await self.session.execute(
            _SET_BALANCE,
            [{"r_account": a, "r_before": before[a], "r_after": after[a]} for a in changed],
        )
        await self.session.execute(_EXTEND_ORDER, extended)
        now = await self._lock_balances(changed)
        if any(now[a] != after[a] for a in changed):
            raise RenewalConflict("a balance changed under the renewal")
        paid = await self._paid_until([row["r_order"] for row in extended])
        if any(paid.get(row["r_order"]) != row["r_until"] for row in extended):
            raise RenewalConflict("an order changed under the renewal")

    async def _post_renewals(self, lines: list[dict[str, Any]]) -> int:
        """Insert the ledger lines, any whose renewal key is taken left out; how many went in."""
        posted = 0
        for part in _chunks(lines):
            result = await self.session.execute(
                insert_ignore(self.session, m.LedgerEntry)
                .values(part)
                .on_conflict_do_nothing(index_elements=[m.LedgerEntry.idempotency_key])
                .returning(m.LedgerEntry.idempotency_key)
            )
            posted += len(result.all())
        return posted

    async def _paid_until(self, order_ids: list[int]) -> dict[int, datetime]:
        paid: dict[int, datetime] = {}
        for ids in _chunks(order_ids):
            rows = await self.session.execute(
                select(m.Order.id, m.Order.paid_until).where(m.Order.id.in_(ids))
            )
            paid.update((order_id, until) for order_id, until in rows)
        return paid
