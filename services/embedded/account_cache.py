"""The account every update looks up, kept in memory between the commits that could change it.

Every update starts by finding the caller's account by Telegram id; read from the database that
is most of a screen's CPU (on SQLite, a hop to aiosqlite's thread and back). The cache answers
it from memory for as long as nothing may have changed it, and never longer:
- a write transaction committed by this process drops every entry (`invalidate`, called by
  the gateway after the commit);
- a commit by any other process is seen too: on SQLite through `PRAGMA data_version` (which
  changes when another connection commits), checked before each answer on a private
  connection; on PostgreSQL through a NOTIFY that a trigger on `accounts` sends when a
  transaction that changed the table commits (migration 0008), received on a connection of
  its own. While that connection is down, the cache answers nothing;
- an entry is never older than `ttl` seconds, whatever happens.

An entry read from the database is kept only if no invalidation happened while it was being
read (the generation it was read at is still the current one), so a read racing a commit
never keeps the old row.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import time
from collections.abc import Awaitable, Callable
from typing import Any

from sqlalchemy.engine import URL
from sqlalchemy.ext.asyncio import AsyncEngine

from services.contracts.common import Account
from services.embedded.db import sqlite_uri

log = logging.getLogger(__name__)

CHANNEL = "accounts_changed"  # the NOTIFY channel of migration 0008's trigger
MAX_ENTRIES = 20_000
RECONNECT_SECONDS = (1.0, 2.0, 5.0, 10.0, 30.0)

Lookup = Callable[[int], Awaitable[Account | None]]


class AccountCache:
    """Accounts by Telegram id, valid for one generation; see the module's docstring."""

    def __init__(
        self,
        ttl: float,
        *,
        max_entries: int = MAX_ENTRIES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.ttl = ttl
        self.max_entries = max_entries
        self.clock = clock
        self.generation = 0
        # False while a change made elsewhere could go unseen (PostgreSQL: not listening).
        self.live = True
        self._entries: dict[int, tuple[int, float, Account]] = {}
        self._version: Callable[[], int | None] = lambda: None
        self._seen_version: int | None = None

    @property
    def enabled(self) -> bool:
        return self.ttl > 0

    def invalidate(self) -> None:
        self.generation += 1
        self._entries.clear()

    def watch_version(self, version: Callable[[], int | None]) -> None:
        """`version()` changes whenever another connection commits (SQLite's data_version)."""
        self._version = version
        self._seen_version = version()

    def _current_generation(self) -> int:
        version = self._version()
        if version != self._seen_version:
            self._seen_version = version
            self.invalidate()
        return self.generation

    def get(self, telegram_id: int) -> Account | None:
        if not self.live:
            return None
        generation = self._current_generation()
        entry = self._entries.get(telegram_id)
        if entry is None:
            return None
        read_at, stored, account = entry
        if read_at != generation or self.clock() - stored > self.ttl:
            del self._entries[telegram_id]
            return None
        return account

    def put(self, telegram_id: int, account: Account, read_at: int) -> None:
        """Keeps `account`, read from the database at generation `read_at`, unless something
        was committed since (then it may be the old row)."""
        if not self.live or read_at != self._current_generation():
            return
        if len(self._entries) >= self.max_entries:
            del self._entries[next(iter(self._entries))]  # the oldest
        self._entries[telegram_id] = (read_at, self.clock(), account)

    def wrap(self, lookup: Lookup) -> Lookup:
        """`lookup` (the database read) answered from the cache when it may be."""

        async def find_account_by_telegram(telegram_id: int) -> Account | None:
            account = self.get(telegram_id)
            if account is not None:
                return account
            read_at = self._current_generation()
            account = await lookup(telegram_id)
            if account is not None:
                self.put(telegram_id, account, read_at)
            return account

        return find_account_by_telegram


class SqliteDataVersion:
    """The file's `PRAGMA data_version`, read on a private connection: it changes whenever
    another connection (of this process or another) commits. A few µs: it reads the WAL
    index and takes no lock a writer waits for."""

    def __init__(self, url: URL) -> None:
        self._connection = sqlite3.connect(
            str(url.database), isolation_level=None, check_same_thread=False, uri=sqlite_uri(url)
        )
        self._connection.execute("PRAGMA query_only=ON")

    @staticmethod
    def applies(url: URL) -> bool:
        """False for an in-memory database, which no other connection can write."""
        return url.database not in (None, "", ":memory:") and url.query.get("mode") != "memory"

    def __call__(self) -> int | None:
        return int(self._connection.execute("PRAGMA data_version").fetchone()[0])

    def close(self) -> None:
        self._connection.close()


class PostgresChangeListener:
    """Listens for the trigger's NOTIFY on a connection of its own and drops the cache on each
    one; marks the cache not live while that connection is down and reconnects."""

    def __init__(self, engine: AsyncEngine, cache: AccountCache) -> None:
        self.engine = engine
        self.cache = cache
        self._connection: Any = None
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        cache.live = False

    def start(self) -> None:
        if self._task is None and not self._closed:
            self._task = asyncio.get_running_loop().create_task(self._keep_listening())

    async def _connect(self) -> None:
        raw = await self.engine.raw_connection()
        connection: Any = raw.driver_connection
        raw.detach()  # ours for good: the pool neither counts nor recycles it
        await connection.add_listener(CHANNEL, self._notified)
        connection.add_termination_listener(self._terminated)
        self._connection = connection
        self.cache.invalidate()  # whatever was committed while nobody listened
        self.cache.live = True

    async def _keep_listening(self) -> None:
        attempt = 0
        while not self._closed:
            if self._connection is None or self._connection.is_closed():
                try:
                    await self._connect()
                    attempt = 0
                except Exception as error:  # the database is down: the cache waits with it
                    delay = RECONNECT_SECONDS[min(attempt, len(RECONNECT_SECONDS) - 1)]
                    log.warning("Account cache not listening (%r); retry in %ss", error, delay)
                    attempt += 1
                    await asyncio.sleep(delay)
                    continue
            await asyncio.sleep(RECONNECT_SECONDS[0])

    def _notified(self, *_args: object) -> None:
        self.cache.invalidate()

    def _terminated(self, *_args: object) -> None:
        self.cache.live = False
        self.cache.invalidate()
        self._connection = None

    async def close(self) -> None:
        self._closed = True
        self.cache.live = False
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
        if self._connection is not None:
            connection, self._connection = self._connection, None
            await connection.close()
