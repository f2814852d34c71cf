"""SQLite reads on the event loop: aiosqlite's connection without its thread.

aiosqlite runs every call of a connection on a thread of its own, and SQLAlchemy makes about
four such calls per statement (cursor, execute, fetch, close). For the short indexed reads an
update makes (the caller's account, a page of orders) those hops are nearly all the cost:
about 1.2 ms of CPU for a lookup SQLite answers in under 10 µs on the calling thread (bench
README, "SQLite reads on the event loop"). A reader of a WAL database never waits for a
writer — it reads its own snapshot — so running such a read inline blocks the loop for no
longer than SQLite's own work.

`LoopConnection` is aiosqlite's `Connection` whose calls run at once on the calling thread,
so SQLAlchemy's aiosqlite dialect drives it unchanged (through `async_creator`). Only the
read-only engine of short reads uses it (services/embedded/db.py); writes, which may wait for
the write lock, and scans (`services.contracts.common.scan`), which read many rows, keep
aiosqlite's thread.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import Callable, Generator
from typing import Any

import aiosqlite


class _RunAtOnce:
    """Stands in for the queue to aiosqlite's thread: runs each call as it is queued and
    settles its future. (SQLAlchemy's dialect queues its isolation-level change here too.)"""

    @staticmethod
    def put_nowait(item: tuple[asyncio.Future[Any] | None, Callable[[], Any]]) -> None:
        future, function = item
        try:
            result = function()
        except BaseException as error:
            if future is not None and not future.done():
                future.set_exception(error)
            return
        if future is not None and not future.done():
            future.set_result(result)


class LoopConnection(aiosqlite.Connection):
    """An aiosqlite connection that never starts its thread: every call runs inline."""

    def __init__(self, connector: Callable[[], sqlite3.Connection]) -> None:
        super().__init__(connector, iter_chunk_size=64)
        self._tx = _RunAtOnce()  # type: ignore[assignment]

    def __await__(self) -> Generator[Any, None, aiosqlite.Connection]:
        return self._connect().__await__()  # aiosqlite's starts the thread first


def loop_connector(database: str, *, uri: bool, timeout: float) -> Callable[[], Any]:
    """An `async_creator` for SQLAlchemy: a LoopConnection to the file `database`."""

    def connect() -> sqlite3.Connection:
        # check_same_thread off: the pool may close a connection from the garbage collector.
        return sqlite3.connect(database, timeout=timeout, uri=uri, check_same_thread=False)

    async def create() -> aiosqlite.Connection:
        return await LoopConnection(connect)

    return create
