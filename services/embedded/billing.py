"""The embedded billing, composed of one mixin per domain, and its transaction gateway."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from sqlalchemy.ext.asyncio import AsyncEngine

from services.embedded.accounts import AccountsMixin, CatalogueMixin, LedgerMixin
from services.embedded.alerts import AlertsMixin, OutboxMixin
from services.embedded.config import BillingConfig
from services.embedded.db import session_factory
from services.embedded.orders import OrdersMixin
from services.embedded.payments import PaymentsMixin
from services.embedded.profile import ProfileMixin
from services.embedded.seed import seed_demo_catalogue
from services.embedded.tickets import TicketsMixin


class EmbeddedBilling(
    AccountsMixin,
    LedgerMixin,
    CatalogueMixin,
    ProfileMixin,
    AlertsMixin,
    OutboxMixin,
    PaymentsMixin,
    OrdersMixin,
    TicketsMixin,
):
    """One instance per transaction; see EmbeddedGateway.transaction()."""


class EmbeddedGateway:
    def __init__(self, engine: AsyncEngine, config: BillingConfig) -> None:
        self.engine = engine
        self.config = config
        self._sessions = session_factory(engine)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[EmbeddedBilling]:
        """Commit when the block succeeds, roll back when it raises."""
        async with self._sessions() as session, session.begin():
            yield EmbeddedBilling(session, self.config)

    async def seed_demo(self) -> int:
        async with self._sessions() as session, session.begin():
            return await seed_demo_catalogue(session)

    async def close(self) -> None:
        await self.engine.dispose()
