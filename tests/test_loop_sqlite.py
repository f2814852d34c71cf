"""On a SQLite file, short reads run on the event loop (services/embedded/loop_sqlite.py);
writes and scans keep aiosqlite's thread. A reader on the loop never waits for a writer, sees
every commit, and cannot write."""

from __future__ import annotations

import inspect
import sqlite3
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Any

import aiosqlite
import pytest
from sqlalchemy import event, text
from sqlalchemy.exc import OperationalError
from sqlalchemy.ext.asyncio import AsyncEngine

from services.billing import Billing, per_call
from services.contracts.common import is_read_only, is_scan
from services.embedded.billing import EmbeddedGateway
from services.embedded.db import LOOP_BUSY_SECONDS
from services.embedded.loop_sqlite import LoopConnection
from tests.conftest import _gateway

# What reads whole tables or a whole audience: it must not block the bot (see `scan`).
SCANS = {
    "low_balance_due",
    "expiring_due",
    "renewals_due",
    "suspension_due",
    "outbox_counts",
    "unanswered_payment_updates",
    "newsletter_subscriber_chat_ids",
    "newsletter_subscriber_count",
    "linked_accounts",
    "tickets_awaiting_reminder",
}


@pytest.fixture
async def gateway(sqlite_url: str) -> AsyncIterator[EmbeddedGateway]:
    gateway = await _gateway(sqlite_url)
    yield gateway
    await gateway.close()


def aiosqlite_threads() -> int:
    """aiosqlite's worker threads alive: one per connection it has open."""
    return sum("_connection_worker_thread" in t.name for t in threading.enumerate())


@contextmanager
def drivers_checked_out(engine: AsyncEngine) -> Iterator[list[object]]:
    """The driver connection of each checkout from `engine`'s pool, in order."""
    seen: list[object] = []

    def record(_dbapi: object, record: Any, _proxy: object) -> None:
        seen.append(record.driver_connection)

    event.listen(engine.sync_engine, "checkout", record)
    try:
        yield seen
    finally:
        event.remove(engine.sync_engine, "checkout", record)


async def test_a_short_read_runs_on_the_loop_and_a_write_on_aiosqlites_thread(
    gateway: EmbeddedGateway,
) -> None:
    billing = per_call(gateway)
    assert gateway.short_read_engine is not gateway.read_engine
    account, created = await billing.get_or_create_account(501, 501, name="Ann")
    assert created
    threads = aiosqlite_threads()
    assert threads >= 1  # the writer's
    with drivers_checked_out(gateway.short_read_engine) as short:
        found = await billing.get_account(account.id)
        listed = await billing.list_orders(account.id)
        await billing.get_account(account.id)
    assert found.id == account.id and listed.total == 0
    assert len(short) == 3 and all(type(c) is LoopConnection for c in short)
    assert aiosqlite_threads() == threads  # no thread for the loop's readers


async def test_a_scan_runs_on_aiosqlites_thread(gateway: EmbeddedGateway) -> None:
    billing = per_call(gateway)
    threads = aiosqlite_threads()
    with drivers_checked_out(gateway.read_engine) as scans:
        assert await billing.newsletter_subscriber_count() == 0
    assert len(scans) == 1 and not isinstance(scans[0], LoopConnection)
    assert isinstance(scans[0], aiosqlite.Connection)
    assert aiosqlite_threads() == threads + 1  # the scan's reader connection


async def test_a_loop_read_sees_the_last_commit_and_does_not_wait_for_a_writer(
    gateway: EmbeddedGateway, sqlite_url: str
) -> None:
    billing = per_call(gateway)
    account, _ = await billing.get_or_create_account(502, 502, name="Ann")
    await billing.set_language(account.id, "ru")
    assert (await billing.get_account(account.id)).language == "ru"

    # Another process holds the write lock with a change not committed yet: the reader on
    # the loop answers from the last commit at once (it would fail with "database is
    # locked" after LOOP_BUSY_SECONDS if it waited for the lock).
    other = sqlite3.connect(sqlite_url.split("///", 1)[1], isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        other.execute("UPDATE accounts SET language = 'en' WHERE id = ?", (account.id,))
        assert (await billing.get_account(account.id)).language == "ru"
        other.execute("COMMIT")
    finally:
        other.close()
    assert (await billing.get_account(account.id)).language == "en"
    assert LOOP_BUSY_SECONDS < 1


async def test_a_loop_reader_cannot_write(gateway: EmbeddedGateway) -> None:
    async with gateway.short_read_engine.connect() as connection:
        with pytest.raises(OperationalError, match="readonly database"):
            await connection.execute(text("UPDATE accounts SET language = 'en'"))


def test_the_reads_of_many_rows_are_scans_and_every_scan_is_read_only() -> None:
    marked = {
        name
        for name, method in inspect.getmembers(Billing, callable)
        if not name.startswith("_") and is_scan(method)
    }
    assert marked == SCANS
    assert all(is_read_only(getattr(Billing, name)) for name in marked)
