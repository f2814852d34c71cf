"""The bot in front of WHMCS: WHMCS is the BillingCore, the bot's own database the BotStore.

`WhmcsGateway.transaction()` yields a `ComposedBilling`: a BillingCore method goes to WHMCS
(`WhmcsCore`, over HTTP, with short local transactions of its own where it needs the bot's
records), a BotStore method to a local transaction opened on first use and committed when the
block ends. A WHMCS call must never wait while that local transaction is open (the rule: no
transaction across a network call), so a block that needs both asks WHMCS first and writes
its marks and outbox rows after — calling WHMCS once the local transaction is open is refused
with an error, in tests and in production alike (and the transport refuses any WHMCS call made
while a billing transaction is open). The few core methods that touch only the bot's records
(`_LOCAL_CORE_METHODS`) run on the block's local transaction, so their writes commit with it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import Any, cast

from services.billing import Billing, BillingCore, BillingGateway, BotStore
from services.errors import BillingUnavailable
from services.whmcs.catalogue import check_default_currency
from services.whmcs.client import WhmcsClient
from services.whmcs.errors import WhmcsAuthError, WhmcsFailure, WhmcsUnavailable

_STORE_METHODS = frozenset(
    name
    for klass in BotStore.__mro__
    if klass.__module__.startswith("services.")
    for name, member in vars(klass).items()
    if callable(member) and not name.startswith("_")
)


# Core methods that only read and write the bot's own records (they make no WHMCS call): in a
# block they run on the block's local transaction, as the core's `<name>_in(store, ...)`, so
# what they write commits with the block's other store writes or not at all (the low-balance
# flag with the alert's outbox row: services/whmcs/due.py).
_LOCAL_CORE_METHODS = frozenset({"mark_low_balance_alerted"})


class StoreAfterCoreError(RuntimeError):
    """A WHMCS call was made while the block's local transaction was open."""


class ComposedBilling:
    """One `transaction()` block: core calls to `core`, store calls to a lazily opened local
    transaction of `local`."""

    def __init__(
        self, core: BillingCore, local: BillingGateway, read_only: bool, scan: bool = False
    ) -> None:
        self._core = core
        self._local_gateway = local
        self._read_only = read_only
        self._scan = scan
        self._local_block: AbstractAsyncContextManager[Billing] | None = None
        self._store: Billing | None = None
        self.base_currency = core.base_currency

    def __getattr__(self, name: str) -> Callable[..., Awaitable[Any]]:
        if name.startswith("_"):
            raise AttributeError(name)
        if name in _STORE_METHODS:
            return self._store_call(name)
        if name in _LOCAL_CORE_METHODS:
            return self._local_core_call(getattr(self._core, f"{name}_in"))
        return self._core_call(name, getattr(self._core, name))

    def _store_call(self, name: str) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            store = await self._open_store()
            return await getattr(store, name)(*args, **kwargs)

        return call

    def _local_core_call(
        self, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            return await method(await self._open_store(), *args, **kwargs)

        return call

    def _core_call(
        self, name: str, method: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        async def call(*args: Any, **kwargs: Any) -> Any:
            if self._store is not None:
                raise StoreAfterCoreError(
                    f"{name}: ask the billing before writing to the bot store in one block"
                )
            try:
                return await method(*args, **kwargs)
            except WhmcsAuthError as exc:
                raise BillingUnavailable("refused") from exc
            except WhmcsUnavailable as exc:
                raise BillingUnavailable("unreachable") from exc

        return call

    async def _open_store(self) -> Billing:
        if self._store is None:
            self._local_block = self._local_gateway.transaction(
                read_only=self._read_only, scan=self._scan
            )
            self._store = await self._local_block.__aenter__()
        return self._store

    async def _finish(self, error: BaseException | None) -> None:
        block, self._local_block, self._store = self._local_block, None, None
        if block is None:
            return
        if error is None:
            await block.__aexit__(None, None, None)
        else:
            await block.__aexit__(type(error), error, error.__traceback__)


class WhmcsGateway:
    """A BillingGateway over WHMCS and the bot's own database."""

    def __init__(self, core: BillingCore, local: BillingGateway, client: WhmcsClient) -> None:
        self.core = core
        self.local = local
        self.client = client  # for jobs that read WHMCS directly (the ticket-reply sync)
        self.base_currency = core.base_currency

    @asynccontextmanager
    async def transaction(
        self, *, read_only: bool = False, scan: bool = False
    ) -> AsyncIterator[Billing]:
        composed = ComposedBilling(self.core, self.local, read_only, scan)
        try:
            yield cast(Billing, composed)
        except BaseException as error:
            await composed._finish(error)
            raise
        await composed._finish(None)

    async def check_setup(self) -> list[str]:
        """At start, before updates are handled: what is wrong with the configuration, each
        logged as a warning (the bot still starts; WHMCS may only be down for a while)."""
        problem = await check_default_currency(self.client, self.base_currency)
        return [problem] if problem else []

    def cached_read(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """Nothing cached here: an account's balance is WHMCS's, read through its client."""
        return call

    def is_retryable(self, error: BaseException) -> bool:
        """A read that found the local database's connection dropped may run again; WHMCS
        reads are retried by the client itself (once), so a failure here is final."""
        if isinstance(error, WhmcsFailure):
            return False
        return self.local.is_retryable(error)

    async def close(self) -> None:
        await self.client.close()
        await self.local.close()
