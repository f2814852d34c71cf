"""The alert jobs' due scans over WHMCS.

The scans page over the linked accounts of the bot store (`limit` at a time, so memory stays
bounded) and read each client's services (GetClientsProducts, up to MAX_SERVICES) and credit
(GetClientsDetails). They do not leave out what the bot has marked as told: the marks live in
the bot store and the jobs' own mark decides (services/contracts/alerts.py).

WHMCS runs renewals, overdue handling and suspension with its own cron (invoices ahead of the
due date, credit applied, suspension after the configured days): `renewals_due` and
`suspension_due` return nothing and `expire_overdue_orders`/`suspend_orders` change nothing.
The bot only tells: the expiry stages and the low balance.

Timezone: WHMCS keeps none for a client (getclientsdetails.md has no such field), so the
recipient's is the bot's own per-account setting (`Account.timezone`, the bot store's accounts
row), as on the embedded billing; None there means the jobs' default one.

The low-balance flag ("told for this crossing", adapter state "low_balance") is written on the
local transaction of the job's block (`mark_low_balance_alerted_in`, routed there by
services/whmcs/gateway.py), so it commits with the job's outbox row or not at all.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from services.billing import BotStore
from services.contracts import alerts as dto
from services.contracts.common import Account
from services.contracts.orders import ACTIVE, EXPIRED, Order
from services.whmcs.order_reads import ServiceFlags, WhmcsOrderBase, order_of

LOW_BALANCE_KIND = "low_balance"  # adapter state: key = account id
LINKED_PAGE = 500


def _stage(order: Order, now: datetime, days: list[int], grace: timedelta) -> int | None:
    """The order's current expiry stage, or None when none is due (embedded's rule)."""
    if order.paid_until <= now:
        return 0 if order.paid_until > now - grace else None
    return next((d for d in days if order.paid_until <= now + timedelta(days=d)), None)


def _due_order(order: Order, stage: int = 0) -> dto.DueOrder:
    return dto.DueOrder(
        order_id=order.id,
        account_id=order.account_id,
        tariff_name=order.tariff_name,
        ip_address=order.ip_address,
        status=order.status,
        paid_until=order.paid_until,
        period_months=order.period_months,
        price_minor=order.price_minor,
        auto_renew=order.auto_renew,
        stage=stage,
    )


class WhmcsDueScansMixin(WhmcsOrderBase):
    async def _recipient(self, account: Account, balance_minor: int) -> dto.Recipient:
        return dto.Recipient(
            account_id=account.id,
            chat_id=account.chat_id,
            language=account.language,
            timezone=account.timezone,
            currency=account.currency,
            balance_minor=balance_minor,
        )

    async def _reachable(self, account_id: int, emailable: bool) -> Account | None:
        """The account when its alerts can reach it: in its chat, or with `emailable` by the
        e-mail it confirmed in the bot when it blocked the bot."""
        account = await self.local.get_account(account_id)
        if account.chat_id is None:
            return None
        if not account.unreachable:
            return account
        if emailable and (await self.local.get_profile(account_id)).email_confirmed:
            return account
        return None

    async def _orders_of(self, account_id: int, client_id: int) -> tuple[int, list[Order]]:
        """The client's credit and its services as orders (with the bot's flags)."""
        client = await self._client_details(client_id)
        flags: dict[str, Any] = await self._flags(account_id)
        types = {p.pid: p.type or "other" for p in await self._products()}
        orders = [
            order_of(
                s, account_id, types.get(s.pid, "other"), ServiceFlags.load(flags.get(str(s.id)))
            )
            for s in await self._services(client)
        ]
        return client.credit_minor, orders

    # ---- expiry ---------------------------------------------------------------------------
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
        found: list[dto.AccountDue] = []
        after = after_account_id
        while len(found) < limit:
            linked = await self.local.linked_accounts(after_account_id=after, limit=limit)
            for account_id, client_id in linked:
                due = await self._expiring_of(account_id, client_id, now, days, grace, emailable)
                if due is not None:
                    found.append(due)
                    if len(found) >= limit:
                        break
            if len(linked) < limit:
                break
            after = linked[-1][0]
        return found

    async def _expiring_of(
        self,
        account_id: int,
        client_id: int,
        now: datetime,
        days: list[int],
        grace: timedelta,
        emailable: bool,
    ) -> dto.AccountDue | None:
        account = await self._reachable(account_id, emailable)
        if account is None:
            return None
        balance, orders = await self._orders_of(account_id, client_id)
        due = []
        for order in sorted(orders, key=lambda o: (o.paid_until, o.id)):
            if order.status != ACTIVE or order.cancel_at_period_end:
                continue  # WHMCS's active services only; "expired" is an active one past due
            stage = _stage(order, now, days, grace)
            if stage is not None:
                status = EXPIRED if order.paid_until <= now else ACTIVE
                due.append(replace(_due_order(order, stage), status=status))
        if not due:
            return None
        return dto.AccountDue(await self._recipient(account, balance), due)

    # ---- low balance ----------------------------------------------------------------------
    async def _low_balance_state(self, account_id: int) -> dict[str, Any]:
        return await self.local.get_adapter_state(LOW_BALANCE_KIND, str(account_id)) or {}

    async def low_balance_due(
        self, *, after_account_id: int = 0, limit: int = 500, emailable: bool = False
    ) -> list[dto.LowBalanceDue]:
        found: list[dto.LowBalanceDue] = []
        after = after_account_id
        while len(found) < limit:
            linked = await self.local.linked_accounts(after_account_id=after, limit=limit)
            for account_id, client_id in linked:
                due = await self._low_balance_of(account_id, client_id, emailable)
                if due is not None:
                    found.append(due)
                    if len(found) >= limit:
                        break
            if len(linked) < limit:
                break
            after = linked[-1][0]
        return found

    async def _low_balance_of(
        self, account_id: int, client_id: int, emailable: bool
    ) -> dto.LowBalanceDue | None:
        threshold = (await self.local.get_profile(account_id)).low_balance_threshold_minor
        if threshold is None:
            return None
        state = await self._low_balance_state(account_id)
        if state.get("alerted"):
            return None
        account = await self._reachable(account_id, emailable)
        if account is None:
            return None
        balance, orders = await self._orders_of(account_id, client_id)
        if balance >= threshold:
            return None
        charges = sorted(
            (o for o in orders if o.next_charge() is not None), key=lambda o: (o.paid_until, o.id)
        )
        return dto.LowBalanceDue(
            recipient=await self._recipient(account, balance),
            balance_minor=balance,
            threshold_minor=threshold,
            # Names this crossing: one more than the crossings told before (see mark below).
            crossing=int(state.get("crossing", 0)) + 1,
            next_charges=[_due_order(o) for o in charges[:3]],
        )

    async def mark_low_balance_alerted(self, account_ids: Sequence[int]) -> list[int]:
        """Outside a gateway block (the core called directly): each flag in its own short
        local transaction. In a block, the gateway calls `mark_low_balance_alerted_in`."""
        return await self.mark_low_balance_alerted_in(self.local, account_ids)

    async def mark_low_balance_alerted_in(
        self, store: BotStore, account_ids: Sequence[int]
    ) -> list[int]:
        """Flag the crossings as told on `store`, the block's local transaction: the flag and
        the job's outbox row commit together, so a crash between the two neither loses the
        alert nor tells it twice. No WHMCS call is made here (the scan read WHMCS before).
        Two concurrent runs may both flag an account (read, then write): the message's
        idempotency key (account, crossing) still queues it once."""
        flagged = []
        for account_id in sorted(set(account_ids)):
            key = str(account_id)
            state = await store.get_adapter_state(LOW_BALANCE_KIND, key) or {}
            if state.get("alerted"):
                continue
            crossing = int(state.get("crossing", 0)) + 1
            value = {"alerted": True, "crossing": crossing}
            await store.put_adapter_state(LOW_BALANCE_KIND, key, value)
            flagged.append(account_id)
        return flagged

    async def rearm_low_balance(self) -> int:
        rearmed = 0
        after = 0
        while True:
            linked = await self.local.linked_accounts(after_account_id=after, limit=LINKED_PAGE)
            for account_id, client_id in linked:
                rearmed += await self._rearm(account_id, client_id)
            if len(linked) < LINKED_PAGE:
                return rearmed
            after = linked[-1][0]

    async def _rearm(self, account_id: int, client_id: int) -> int:
        state = await self._low_balance_state(account_id)
        if not state.get("alerted"):
            return 0
        threshold = (await self.local.get_profile(account_id)).low_balance_threshold_minor
        if threshold is not None:
            client = await self._client_details(client_id, fresh=True)
            if client.credit_minor < threshold:
                return 0
        value = {"alerted": False, "crossing": int(state.get("crossing", 0))}
        await self.local.put_adapter_state(LOW_BALANCE_KIND, str(account_id), value)
        return 1

    # ---- what WHMCS's own cron does -------------------------------------------------------
    async def renewals_due(
        self, now: datetime, lead: timedelta, *, after_account_id: int = 0, limit: int = 500
    ) -> list[dto.AccountDue]:
        return []  # WHMCS's cron invoices services ahead of their due date and applies credit

    async def expire_overdue_orders(self, now: datetime) -> int:
        return 0  # "expired" is derived from the due date; WHMCS's cron handles overdue

    async def suspension_due(
        self, now: datetime, grace: timedelta, *, limit: int = 500
    ) -> list[dto.AccountDue]:
        return []  # WHMCS's cron suspends overdue services (its own automation settings)

    async def suspend_orders(
        self, order_ids: Sequence[int], now: datetime, grace: timedelta
    ) -> list[int]:
        return []  # the bot suspends nothing over WHMCS: its automation does it
