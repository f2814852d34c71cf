"""The embedded billing, composed of one mixin per domain, and its transaction gateway.

Both halves of the seam live in one database here: `EmbeddedCore` is the BillingCore, and
`EmbeddedStore` the BotStore that stays local even when the billing is external.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager, nullcontext
from typing import Any

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.billing import Billing, BillingCore, BillingGateway, BotStore, TransactionMark
from services.embedded.account_cache import AccountCache, PostgresChangeListener, SqliteDataVersion
from services.embedded.accounts import AccountsMixin, CatalogueMixin
from services.embedded.alerts import DueScansMixin
from services.embedded.broadcasts import BroadcastsMixin
from services.embedded.carts import CartsMixin
from services.embedded.config import BillingConfig
from services.embedded.db import read_only_engine, session_factory, short_read_engine
from services.embedded.desk import StaffDeskMixin
from services.embedded.links import AdapterStateMixin, BillingLinksMixin
from services.embedded.marks import AlertMarksMixin
from services.embedded.outbox import JobLeasesMixin, OutboxMixin, PaymentInboxMixin
from services.embedded.payments import PaymentsMixin
from services.embedded.seed import seed_demo_catalogue
from services.embedded.tickets import TicketsMixin
from services.embedded.web_logins import WebLoginsMixin


class EmbeddedCore(
    AccountsMixin,
    CatalogueMixin,
    PaymentsMixin,  # with LedgerMixin, ProfileMixin and RatesMixin, its bases
    CartsMixin,  # with OrdersMixin, its base
    TicketsMixin,
    DueScansMixin,
):
    """The billing half. The mixins inherit what they use of each other, so the type checker
    sees the same classes as the runtime."""


class EmbeddedStore(
    OutboxMixin,
    PaymentInboxMixin,
    JobLeasesMixin,
    BroadcastsMixin,
    AlertMarksMixin,
    StaffDeskMixin,
    BillingLinksMixin,
    AdapterStateMixin,
    WebLoginsMixin,
):
    """The bot's own half."""


class EmbeddedBilling(EmbeddedCore, EmbeddedStore):
    """One instance per transaction; see EmbeddedGateway.transaction()."""


class EmbeddedGateway:
    def __init__(self, engine: AsyncEngine, config: BillingConfig) -> None:
        self.engine = engine
        self.config = config
        self.base_currency = config.base_currency
        self._sessions = session_factory(engine)
        self.read_engine = read_only_engine(engine)
        self._read_sessions = session_factory(self.read_engine)
        self.short_read_engine = short_read_engine(engine, self.read_engine)
        self._short_read_sessions = session_factory(self.short_read_engine)
        # SQLite has one writer at a time. Writers of this process queue here, in order,
        # instead of in SQLite's busy handler, which polls with sleeps of up to 100 ms;
        # other processes on the same file still wait on busy_timeout.
        self._writers = asyncio.Lock() if engine.dialect.name == "sqlite" else None
        self.accounts = AccountCache(
            config.account_cache_seconds if engine.dialect.name in ("sqlite", "postgresql") else 0
        )
        self._data_version: SqliteDataVersion | None = None
        self._listener: PostgresChangeListener | None = None
        self._watching = False

    @asynccontextmanager
    async def transaction(
        self, *, read_only: bool = False, scan: bool = False
    ) -> AsyncIterator[EmbeddedBilling]:
        """Commit when the block succeeds, roll back when it raises. A read-only transaction
        takes no write lock and refuses writes; unless it is a `scan`, it runs on the short
        read engine (on SQLite: on the event loop)."""
        with TransactionMark():
            if read_only:
                # Nothing to commit: the readers run each statement in autocommit and refuse
                # writes, so the session just begins on its first statement and closing it
                # ends it (no session-level BEGIN and COMMIT around every read).
                sessions = self._read_sessions if scan else self._short_read_sessions
                async with sessions() as session:
                    yield EmbeddedBilling(session, self.config)
                return
            async with self._writers or nullcontext(), self._sessions() as session:
                try:
                    async with session.begin():
                        yield EmbeddedBilling(session, self.config)
                finally:  # committed, or perhaps (a COMMIT that failed)
                    self.accounts.invalidate()

    def cached_read(
        self, name: str, call: Callable[..., Awaitable[Any]]
    ) -> Callable[..., Awaitable[Any]]:
        """The account lookup every update makes, answered from memory while no commit can
        have changed it (services/embedded/account_cache.py)."""
        if name != "find_account_by_telegram" or not self.accounts.enabled:
            return call
        cached = self.accounts.wrap(call)

        async def find_account_by_telegram(telegram_id: int) -> Any:
            self._watch_changes()
            return await cached(telegram_id)

        return find_account_by_telegram

    def _watch_changes(self) -> None:
        """From the first lookup on, see other processes' commits too: SQLite's data_version
        (the file exists by then), PostgreSQL's NOTIFY on a connection of its own."""
        if self._watching:
            return
        self._watching = True
        url = self.engine.url
        if self.engine.dialect.name == "postgresql":
            self._listener = PostgresChangeListener(self.engine, self.accounts)
            self._listener.start()
        elif SqliteDataVersion.applies(url):
            self._data_version = SqliteDataVersion(url)
            self.accounts.watch_version(self._data_version)

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        """The call met a connection the database had dropped (a restart): nothing of it can
        have happened, and the pool has been renewed."""
        return isinstance(error, DBAPIError) and error.connection_invalidated

    async def seed_demo(self) -> int:
        async with self._sessions() as session, session.begin():
            return await seed_demo_catalogue(session)

    async def close(self) -> None:
        if self._listener is not None:
            await self._listener.close()
        if self._data_version is not None:
            self._data_version.close()
        if self.short_read_engine is not self.read_engine:
            await self.short_read_engine.dispose()
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        await self.engine.dispose()


def _fits_the_seam(
    gateway: EmbeddedGateway, core: EmbeddedCore, store: EmbeddedStore, billing: EmbeddedBilling
) -> tuple[BillingGateway, BillingCore, BotStore, Billing]:
    """Never called: here the type checker (`make lint`) proves that each half of the embedded
    billing implements every method of its half of the seam, with their signatures."""
    return gateway, core, store, billing
