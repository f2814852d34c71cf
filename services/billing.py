"""The typed seam between the bot and a billing, in two halves, and how transactions are opened.

- `BillingCore` is what a billing provides: accounts and linking, balance and ledger,
  catalogue, profile, orders, invoices and payments, tickets, and the due scans the alert jobs
  need. The embedded billing implements it on SQLAlchemy; an adapter to an external billing
  (WHMCS) implements this half only.
- `BotStore` is what the bot keeps for itself (services/contracts/store.py): the outbox and the
  payment inbox, job leases, broadcasts, alert marks, the staff desk's links and reminders, and
  an external billing's links and records. It
  always lives in the bot's own database, so an alert's mark and its queued message commit
  together whatever billing is behind the bot.

Handlers and jobs see both as one `Billing`. Handlers receive `per_call(gateway)`: every method
is its own short transaction, committed before the method returns, so no transaction is open
when the handler talks to Telegram afterwards (see CONTRIBUTING.md, "Unit of work"). Jobs that
need several calls in one transaction (mark an alert and queue its message) open
`gateway.transaction()` and make no network call inside it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from contextvars import ContextVar
from typing import Any, Protocol, cast

from services.contracts.accounts import AccountsApi, CatalogueApi, LedgerApi
from services.contracts.alerts import DueScansApi
from services.contracts.common import is_read_only, is_scan
from services.contracts.orders import OrdersApi
from services.contracts.payments import PaymentsApi
from services.contracts.profile import ProfileApi
from services.contracts.store import (
    AdapterStateApi,
    AlertMarksApi,
    BillingLinksApi,
    BroadcastsApi,
    JobLeasesApi,
    OutboxApi,
    PaymentInboxApi,
    StaffDeskApi,
    WebLoginsApi,
)
from services.contracts.tickets import TicketsApi


class BillingCore(
    AccountsApi,
    LedgerApi,
    CatalogueApi,
    ProfileApi,
    PaymentsApi,
    OrdersApi,
    TicketsApi,
    DueScansApi,
    Protocol,
):
    """What a billing provides, one domain Protocol per section."""


class BotStore(
    OutboxApi,
    PaymentInboxApi,
    JobLeasesApi,
    BroadcastsApi,
    AlertMarksApi,
    StaffDeskApi,
    BillingLinksApi,
    AdapterStateApi,
    WebLoginsApi,
    Protocol,
):
    """What the bot keeps in its own database, whatever billing is behind it."""


class Billing(BillingCore, BotStore, Protocol):
    """Both halves on one transaction: what handlers and jobs are given."""


class BillingGateway(Protocol):
    base_currency: str

    def transaction(
        self, *, read_only: bool = False, scan: bool = False
    ) -> AbstractAsyncContextManager[Billing]:
        """A Billing bound to one transaction: committed on success, rolled back on error.
        `read_only` transactions take no write lock (SQLite) and refuse writes; `scan`, with
        it, says the reads may walk many rows (`services.contracts.common.scan`)."""

    def cached_read(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """`call`, the read-only method `name` run in a transaction of its own, or a cheaper
        path to the same answer (the embedded billing's account cache)."""

    def is_retryable(self, error: BaseException) -> bool:
        """The error proves the call did nothing and may simply be made again (a dropped
        connection found at its first statement)."""

    async def close(self) -> None: ...


# Set while the current task is inside a billing transaction; the Bot API session checks it
# (tests fail, production logs an error) so a network call never happens with one open.
_open_transactions: ContextVar[int] = ContextVar("open_billing_transactions", default=0)


def in_transaction() -> bool:
    return _open_transactions.get() > 0


class TransactionMark:
    """Counts the current task into a transaction for the time of a `with` block."""

    def __enter__(self) -> None:
        self._token = _open_transactions.set(_open_transactions.get() + 1)

    def __exit__(self, *exc: object) -> None:
        _open_transactions.reset(self._token)


class PerCallBilling:
    """Every method call runs in a transaction of its own; read-only methods (marked with
    `services.contracts.common.read_only`) in a read-only one."""

    def __init__(self, gateway: BillingGateway) -> None:
        self._gateway = gateway
        self._calls: dict[str, Callable[..., Awaitable[Any]]] = {}
        self.base_currency = gateway.base_currency

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        call = self._calls.get(name)
        if call is None:
            call = self._calls[name] = self._make_call(name)
        return call

    def _make_call(self, name: str) -> Callable[..., Awaitable[Any]]:
        declared = getattr(Billing, name, None)
        if not callable(declared):
            raise AttributeError(f"Billing has no method {name!r}")
        read_only, scan = is_read_only(declared), is_scan(declared)
        gateway = self._gateway

        async def once(*args: Any, **kwargs: Any) -> Any:
            async with gateway.transaction(read_only=read_only, scan=scan) as billing:
                return await getattr(billing, name)(*args, **kwargs)

        async def call(*args: Any, **kwargs: Any) -> Any:
            try:
                return await once(*args, **kwargs)
            except Exception as error:
                # Only a read is repeated: a write may have failed at its COMMIT, and then
                # nobody knows whether it happened.
                if not (read_only and gateway.is_retryable(error)):
                    raise
            return await once(*args, **kwargs)

        call.__name__ = call.__qualname__ = name
        return gateway.cached_read(name, call) if read_only else call


def per_call(gateway: BillingGateway) -> Billing:
    return cast(Billing, PerCallBilling(gateway))
