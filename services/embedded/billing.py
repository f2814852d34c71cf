"""The embedded billing, composed of one mixin per domain, and its transaction gateway.

Both halves of the seam live in one database here: `EmbeddedCore` is the BillingCore, and
`EmbeddedStore` the BotStore that stays local even when the billing is external.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager, nullcontext

from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.billing import Billing, BillingCore, BillingGateway, BotStore, TransactionMark
from services.embedded.accounts import AccountsMixin, CatalogueMixin
from services.embedded.alerts import DueScansMixin
from services.embedded.broadcasts import BroadcastsMixin
from services.embedded.carts import CartsMixin
from services.embedded.config import BillingConfig
from services.embedded.db import read_only_engine, session_factory
from services.embedded.desk import StaffDeskMixin
from services.embedded.links import AdapterStateMixin, BillingLinksMixin
from services.embedded.marks import AlertMarksMixin
from services.embedded.outbox import JobLeasesMixin, OutboxMixin, PaymentInboxMixin
from services.embedded.payments import PaymentsMixin
from services.embedded.seed import seed_demo_catalogue
from services.embedded.tickets import TicketsMixin


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
        # SQLite has one writer at a time. Writers of this process queue here, in order,
        # instead of in SQLite's busy handler, which polls with sleeps of up to 100 ms;
        # other processes on the same file still wait on busy_timeout.
        self._writers = asyncio.Lock() if engine.dialect.name == "sqlite" else None

    @asynccontextmanager
    async def transaction(self, *, read_only: bool = False) -> AsyncIterator[EmbeddedBilling]:
        """Commit when the block succeeds, roll back when it raises. A read-only transaction
        takes no write lock and refuses writes."""
        sessions = self._read_sessions if read_only else self._sessions
        queue = self._writers if self._writers is not None and not read_only else nullcontext()
        with TransactionMark():
            async with queue, sessions() as session, session.begin():
                yield EmbeddedBilling(session, self.config)

    @staticmethod
    def is_retryable(error: BaseException) -> bool:
        """The call met a connection the database had dropped (a restart): nothing of it can
        have happened, and the pool has been renewed."""
        return isinstance(error, DBAPIError) and error.connection_invalidated

    async def seed_demo(self) -> int:
        async with self._sessions() as session, session.begin():
            return await seed_demo_catalogue(session)

    async def close(self) -> None:
        if self.read_engine is not self.engine:
            await self.read_engine.dispose()
        await self.engine.dispose()


def _fits_the_seam(
    gateway: EmbeddedGateway, core: EmbeddedCore, store: EmbeddedStore, billing: EmbeddedBilling
) -> tuple[BillingGateway, BillingCore, BotStore, Billing]:
    """Never called: here the type checker (`make lint`) proves that each half of the embedded
    billing implements every method of its half of the seam, with their signatures."""
    return gateway, core, store, billing
