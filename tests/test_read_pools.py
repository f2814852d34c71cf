"""A burst of reads wider than the reader pool waits its turn for a connection, and the pool
keeps what it opened: the next burst connects no more (services/embedded/db.py). A pool that
closed the connections it opened beyond its size reconnected for every call of every burst —
on PostgreSQL a server process and statements prepared again each time."""

from __future__ import annotations

import asyncio

from sqlalchemy import event

from services.billing import per_call
from services.embedded.billing import EmbeddedGateway
from services.embedded.db import READERS

BURST = READERS * 3


async def test_a_burst_of_reads_wider_than_the_pool_reuses_its_connections(
    gateway: EmbeddedGateway,
) -> None:
    billing = per_call(gateway)
    account, _ = await billing.get_or_create_account(601, 601, name="Ann")
    engine = gateway.short_read_engine
    connects: list[object] = []

    def count(*_args: object) -> None:
        connects.append(1)

    event.listen(engine.sync_engine, "connect", count)
    try:

        async def burst() -> None:
            pages = await asyncio.gather(*(billing.list_orders(account.id) for _ in range(BURST)))
            assert all(page.total == 0 for page in pages)

        await burst()
        opened = len(connects)
        assert opened <= READERS
        await burst()
        await burst()
        assert len(connects) == opened
        assert engine.pool.checkedout() == 0
    finally:
        event.remove(engine.sync_engine, "connect", count)
