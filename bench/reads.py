"""CPU per billing read, by the path it takes (issue 10).

    python -m bench.reads [--calls 2000] [--databases sqlite,postgresql]

The read every update may make — the caller's account by Telegram id, the account cache off
— called one after another through the handlers' per-call billing (`per_call(gateway)`):
- `short`: how the bot runs it (on SQLite, on the event loop: services/embedded/loop_sqlite.py);
- `scan`: the same statement through the reader a `@scan` method gets (on SQLite, aiosqlite's
  worker thread — every read before the loop readers);
- `sqlite3`: the bare statement on a `sqlite3` connection, the floor (SQLite only).
CPU is the process's (`time.process_time`: every thread, aiosqlite's included), per call,
after a warm-up; ratios are against `short` of the same run.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sqlite3
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

from sqlalchemy.engine import make_url

from bot.__main__ import event_loop_factory
from bot.factory import create_gateway
from services.billing import per_call
from services.embedded.accounts import _ACCOUNT_BY_TELEGRAM
from services.embedded.billing import EmbeddedGateway
from services.embedded.db import _upgrade
from tests.conftest import POSTGRES_ADMIN_URL, _admin_execute, make_settings

TELEGRAM_ID = 7
Read = Callable[[], Awaitable[Any]]


async def _cpu_per_call(read: Read, calls: int) -> float:
    for _ in range(100):
        assert await read() is not None
    gc.collect()
    start = time.process_time()
    for _ in range(calls):
        await read()
    return (time.process_time() - start) / calls


def _scan_read(gateway: EmbeddedGateway) -> Read:
    async def read() -> Any:
        async with gateway.transaction(read_only=True, scan=True) as billing:
            return await billing.find_account_by_telegram(TELEGRAM_ID)

    return read


async def _measure(url: str, calls: int) -> dict[str, float]:
    await asyncio.to_thread(_upgrade, url, "head")
    gateway = create_gateway(make_settings(url, account_cache_seconds=0))
    try:
        billing = per_call(gateway)
        await billing.get_or_create_account(TELEGRAM_ID, TELEGRAM_ID, name="Ann")
        result = {
            "short": await _cpu_per_call(
                lambda: billing.find_account_by_telegram(TELEGRAM_ID), calls
            ),
            "scan": await _cpu_per_call(_scan_read(gateway), calls),
        }
        if gateway.engine.dialect.name == "sqlite":
            sql = str(_ACCOUNT_BY_TELEGRAM.compile(dialect=gateway.engine.dialect))
            connection = sqlite3.connect(str(make_url(url).database))

            async def bare() -> Any:
                return connection.execute(sql, (TELEGRAM_ID,)).fetchone()

            result["sqlite3"] = await _cpu_per_call(bare, calls)
            connection.close()
        return result
    finally:
        await gateway.close()


async def _run(database: str, calls: int) -> dict[str, float]:
    if database == "sqlite":
        with tempfile.TemporaryDirectory(prefix="bench-reads-") as tmp:
            return await _measure(f"sqlite+aiosqlite:///{Path(tmp) / 'reads.sqlite3'}", calls)
    name = f"bench_reads_{uuid.uuid4().hex[:10]}"
    await _admin_execute(f'CREATE DATABASE "{name}"')
    try:
        url = make_url(POSTGRES_ADMIN_URL).set(database=name)
        return await _measure(url.render_as_string(hide_password=False), calls)
    finally:
        await _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


async def run(calls: int, databases: list[str]) -> None:
    print(f"reads: CPU µs per account lookup (the cache off), {calls} calls each")
    print(f"{'database':<11}{'path':<9}{'µs/call':>9}{'× short':>9}")
    for database in databases:
        result = await _run(database, calls)
        for path, seconds in result.items():
            ratio = seconds / result["short"]
            print(f"{database:<11}{path:<9}{seconds * 1e6:>9.1f}{ratio:>8.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--calls", type=int, default=2000)
    parser.add_argument("--databases", default="sqlite,postgresql")
    args = parser.parse_args()
    with asyncio.Runner(loop_factory=event_loop_factory()) as runner:  # the bot's loop
        runner.run(run(args.calls, args.databases.split(",")))


if __name__ == "__main__":
    main()
