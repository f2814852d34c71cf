"""Alert scans over a large billing, and the outbox sender against a limit-enforcing Telegram.

    python -m bench.alerts [--accounts 100000] [--orders-per-account 10] [--messages 600]

Part 1 builds a SQLite billing (default 100k accounts, 1M orders, paid-until spread over the
past 60 days and the next year, 30 % of accounts with a low-balance threshold) and measures
one alert tick (renewals, overdue, expiry stages, low balance) — the first one, which alerts
everything due and writes marks and outbox rows, and a repeated one, which finds nothing new —
plus the expiry scan alone. Baseline, measured in the same run on the same database: one plain
read of the whole orders table (what any job that filtered in Python would pay at the very
least). Time and peak Python memory (tracemalloc) are printed with their ratio to the baseline.

Part 2 queues `--messages` messages (most to distinct chats, a few chats with several, one
group) and drains them with the real OutboxSender over real time against a stand-in that
answers like Telegram with some latency and returns 429 whenever a limit is broken (30/s in
any second, 1/s per chat, 20/min per group). Prints the achieved rate against the limit and
how many 429s the sender caused.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import random
import sqlite3
import tempfile
import time
import tracemalloc
from collections import deque
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import keyboards.alerts as alert_kb
from bot.config import Settings
from bot.factory import create_bot, create_gateway, create_i18n
from services.alerts import AlertPolicy, run_alert_jobs, scan_expiring
from services.embedded import models as m
from services.embedded.db import _upgrade
from services.outbox import OutboxSender

TOKEN = "1000001:BENCH-token-abcdefghijklmnopqrstuvwxyz"
PRICES = {1: 7900, 2: 12900, 3: 19900, 4: 490, 5: 990, 6: 1990}  # demo catalogue, 1 month


def _settings(url: str) -> Settings:
    return Settings(
        bot_token=TOKEN,
        database_url=url,
        telegram_api_url="http://127.0.0.1:1",
        _env_file=None,
    )


def _stamp(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _defaults(table: Any, now: datetime) -> dict[str, Any]:
    """Column defaults as the ORM would fill them (they are Python-side defaults)."""
    values: dict[str, Any] = {}
    for column in table.columns:
        default = column.default
        if default is not None and default.is_scalar:
            values[column.name] = default.arg
        elif default is not None and default.is_callable:
            values[column.name] = _stamp(now)
        else:
            values[column.name] = None
    return values


def _insert(db: sqlite3.Connection, table: Any, rows: list[dict[str, Any]]) -> None:
    names = list(rows[0])
    sql = f"INSERT INTO {table.name} ({', '.join(names)}) VALUES ({', '.join('?' for _ in names)})"
    db.executemany(sql, [tuple(row[n] for n in names) for row in rows])


def build(path: Path, accounts: int, per_account: int, now: datetime, seed: int = 7) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    _upgrade(url, "head")

    async def seed_catalogue() -> None:
        gateway = create_gateway(_settings(url))
        await gateway.seed_demo()
        await gateway.close()

    asyncio.run(seed_catalogue())
    rnd = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA synchronous=OFF")
    account_base = _defaults(m.Account.__table__, now)
    order_base = _defaults(m.Order.__table__, now)
    chunk: list[dict[str, Any]] = []
    orders: list[dict[str, Any]] = []
    order_id = 0
    for account_id in range(1, accounts + 1):
        threshold = rnd.choice((1000, 2000, 5000)) if rnd.random() < 0.3 else None
        balance = rnd.randint(0, 20000)
        if threshold and rnd.random() < 0.15:
            balance = rnd.randint(0, threshold - 1)
        chunk.append(
            {
                **account_base,
                "id": account_id,
                "telegram_id": 10**9 + account_id,
                "chat_id": 10**9 + account_id,
                "login": f"tg{10**9 + account_id}",
                "currency": "EUR",
                "language": "ru" if account_id % 3 == 0 else "en",
                "timezone": "Europe/Moscow" if account_id % 4 == 0 else None,
                "balance_minor": balance,
                "low_balance_threshold_minor": threshold,
                "newsletter": account_id % 2 == 0,
            }
        )
        for _ in range(per_account):
            order_id += 1
            tariff = rnd.randint(1, 6)
            paid_until = now + timedelta(seconds=rnd.randint(-60 * 86400, 365 * 86400))
            if paid_until > now:
                status = "active"
            elif paid_until > now - timedelta(days=3):
                status = rnd.choice(("active", "expired"))
            else:
                status = "suspended"
            if rnd.random() < 0.03:
                status = "cancelled"
            orders.append(
                {
                    **order_base,
                    "id": order_id,
                    "account_id": account_id,
                    "tariff_id": tariff,
                    "status": status,
                    "period_months": 1,
                    "price_minor": PRICES[tariff],
                    "created_at": _stamp(paid_until - timedelta(days=30)),
                    "paid_until": _stamp(paid_until),
                    "auto_renew": rnd.random() < 0.5,
                    "cancel_at_period_end": rnd.random() < 0.02,
                }
            )
        if len(chunk) >= 10000:
            _insert(db, m.Account.__table__, chunk)
            _insert(db, m.Order.__table__, orders)
            chunk, orders = [], []
    if chunk:
        _insert(db, m.Account.__table__, chunk)
        _insert(db, m.Order.__table__, orders)
    db.commit()
    db.execute("ANALYZE")
    db.close()


async def measure(run: Callable[[], Awaitable[Any]], *, memory: bool) -> tuple[float, int, Any]:
    """(seconds, peak bytes or 0, result) of one run."""
    gc.collect()
    if memory:
        tracemalloc.start()
    started = time.perf_counter()
    result = await run()
    seconds = time.perf_counter() - started
    peak = 0
    if memory:
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
    return seconds, peak, result


def _status_kb(field: str) -> int:
    """A VmRSS/VmHWM figure of this process in kB (Linux; 0 elsewhere)."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


async def rss_growth(run: Callable[[], Awaitable[Any]]) -> tuple[float, int, Any]:
    """(seconds, peak RSS above the RSS at the start in bytes, result) of one run: the peak
    (VmHWM) is reset first, so what building the database took does not count (Linux)."""
    gc.collect()
    try:
        with open("/proc/self/clear_refs", "w") as clear:
            clear.write("5")  # resets VmHWM to the current RSS
    except OSError:
        pass
    start = _status_kb("VmRSS")
    seconds, _, result = await measure(run, memory=False)
    return seconds, max(0, _status_kb("VmHWM") - start) * 1024, result


def _targets(first_t: float, base_t: float, again_t: float, growth: int) -> str:
    """Issue 14's targets for the alert scan."""
    checks = [
        (f"first tick {first_t:.1f}s (≤ 30 s)", first_t <= 30),
        (f"first tick {first_t / base_t:.2f} x the plain read (≤ 5 x)", first_t <= 5 * base_t),
        (f"repeated tick {again_t:.2f}s (≤ 2 s)", again_t <= 2),
        (
            f"peak RSS growth of the first tick {growth / 2**20:.0f} MB (≤ 100 MB)",
            growth <= 100 * 2**20,
        ),
    ]
    return "targets:\n" + "\n".join(
        f"  {text}: {'met' if ok else 'NOT met'}" for text, ok in checks
    )


def _mb(value: int) -> str:
    return f"{value / 2**20:7.1f} MB"


async def bench_scans(path: Path, now: datetime) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    settings = _settings(url)
    gateway = create_gateway(settings)
    i18n = create_i18n("en")
    policy = AlertPolicy(base_currency=settings.default_currency)

    async def full_read() -> int:
        from sqlalchemy import select

        count = 0
        async with gateway.transaction() as billing:
            result = await billing.session.stream(
                select(
                    m.Order.id, m.Order.account_id, m.Order.status, m.Order.paid_until
                ).execution_options(yield_per=10_000)
            )
            async for part in result.partitions():
                count += len(part)
        return count

    async def tick() -> dict[str, Any]:
        return await run_alert_jobs(gateway, i18n, policy, now, keyboards=alert_kb)

    async def expiring() -> Any:
        return await scan_expiring(gateway, i18n, policy, now, keyboards=alert_kb)

    base_t, _, rows = await measure(full_read, memory=False)
    _, base_m, _ = await measure(full_read, memory=True)
    first_t, growth, reports = await rss_growth(tick)
    again_t, _, _ = await measure(tick, memory=False)
    _, again_m, _ = await measure(tick, memory=True)
    exp_t, _, _ = await measure(expiring, memory=False)
    _, exp_m, _ = await measure(expiring, memory=True)
    async with gateway.transaction() as billing:
        counts = await billing.outbox_counts()
    await gateway.close()

    summary = ", ".join(
        f"{name} {r.seconds:.1f}s: {r.alerts} alerts"
        + (f" ({len(r.renewed)} renewed, {len(r.failed)} failed)" if name == "renewal" else "")
        + (f" ({r.expired} expired, {len(r.suspended)} suspended)" if name == "overdue" else "")
        for name, r in reports.items()
    )
    print(f"orders read by the baseline: {rows}; first tick: {summary}")
    print(f"outbox after the ticks: {counts}")
    print(f"{'':34}{'time':>10}{'x base':>9}{'peak mem':>14}{'x base':>9}")
    print(f"{'baseline: read all orders':34}{base_t:9.2f}s{1:9.2f}{_mb(base_m):>14}{1:9.2f}")
    print(
        f"{'first alert tick (writes all)':34}{first_t:9.2f}s{first_t / base_t:9.2f}"
        f"{_mb(growth):>14}   (peak RSS growth)"
    )
    print(
        f"{'repeated alert tick (nothing new)':34}{again_t:9.2f}s{again_t / base_t:9.2f}"
        f"{_mb(again_m):>14}{again_m / base_m:9.2f}"
    )
    print(
        f"{'expiry scan alone (repeated)':34}{exp_t:9.2f}s{exp_t / base_t:9.2f}"
        f"{_mb(exp_m):>14}{exp_m / base_m:9.2f}"
    )
    print(_targets(first_t, base_t, again_t, growth))


# ---- the sender ------------------------------------------------------------------------------
class LimitedTelegram:
    """Answers sendMessage like Telegram after `latency` seconds, with 429 whenever the call
    breaks a limit: 30 in any 1 s, 1 per chat per second, 20 per group per minute."""

    def __init__(self, latency: float = 0.03) -> None:
        self.latency = latency
        self.window: deque[float] = deque()
        self.last: dict[int, float] = {}
        self.groups: dict[int, deque[float]] = {}
        self.ok: list[float] = []
        self.violations = 0
        self.message_id = 0

    def check(self, chat_id: int, at: float) -> bool:
        while self.window and self.window[0] <= at - 1:
            self.window.popleft()
        if len(self.window) >= 30:
            return False
        if chat_id in self.last and at - self.last[chat_id] < 1 - 1e-3:
            return False
        if chat_id < 0:
            group = self.groups.setdefault(chat_id, deque())
            while group and group[0] <= at - 60:
                group.popleft()
            if len(group) >= 20:
                return False
            group.append(at)
        self.window.append(at)
        self.last[chat_id] = at
        return True

    async def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        at = time.monotonic()
        await asyncio.sleep(self.latency)
        chat_id = int(params["chat_id"])
        if not self.check(chat_id, at):
            self.violations += 1
            return 429, {
                "ok": False,
                "error_code": 429,
                "description": "Too Many Requests: retry after 1",
                "parameters": {"retry_after": 1},
            }
        self.ok.append(at)
        self.message_id += 1
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        if chat_id < 0:
            chat["title"] = "group"
        return 200, {
            "ok": True,
            "result": {
                "message_id": self.message_id,
                "date": int(time.time()),
                "chat": chat,
                "text": params.get("text", ""),
            },
        }


def _session(fake: LimitedTelegram) -> Any:
    import json

    from aiogram.client.session.base import BaseSession

    class Session(BaseSession):
        async def make_request(self, bot: Any, method: Any, timeout: int | None = None) -> Any:
            params = {k: v for k, v in method.model_dump(warnings=False).items() if v is not None}
            status, body = await fake.handle(method.__api_method__, params)
            response = self.check_response(
                bot=bot, method=method, status_code=status, content=json.dumps(body)
            )
            return response.result

        async def stream_content(self, *args: Any, **kwargs: Any) -> Any:
            yield b""

        async def close(self) -> None:
            return None

    return Session()


async def bench_sender(path: Path, messages: int) -> None:
    url = f"sqlite+aiosqlite:///{path}"
    settings = _settings(url)
    gateway = create_gateway(settings)
    fake = LimitedTelegram()
    bot = create_bot(settings, session=_session(fake))
    repeated = max(1, messages // 20)  # 5 % go to 10 chats that get several each
    group = 5
    distinct = messages - repeated - group
    async with gateway.transaction() as billing:
        for i in range(distinct):
            await billing.enqueue_message(5 * 10**9 + i, "sendMessage", {"text": f"bulk {i}"})
        for i in range(repeated):
            await billing.enqueue_message(6 * 10**9 + i % 10, "sendMessage", {"text": f"r {i}"})
        for i in range(group):
            await billing.enqueue_message(-100777, "sendMessage", {"text": f"group {i}"})
    sender = OutboxSender(gateway, bot, owner="bench", lease=timedelta(seconds=120))
    started = time.monotonic()
    report = await sender.drain()
    elapsed = time.monotonic() - started
    await gateway.close()
    ok = sorted(fake.ok)
    busiest = max(sum(1 for u in ok if t <= u < t + 1) for t in ok) if ok else 0
    bulk_span = ok[distinct - 1] - ok[0] if len(ok) >= distinct else elapsed
    bulk_rate = (distinct - 1) / bulk_span if bulk_span > 0 else 0.0
    print(
        f"sender: {report.sent} sent of {messages} in {elapsed:.1f}s "
        f"(latency {fake.latency * 1000:.0f} ms per call, real time)"
    )
    print(
        f"  achieved rate over the first {distinct} messages: {bulk_rate:.1f} msg/s = "
        f"{bulk_rate / 30:.2f} x the 30/s limit; busiest second: {busiest} calls"
    )
    print(
        f"  429s caused: {fake.violations}; waits on retry_after: {len(report.retry_after_waits)}"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=100_000)
    parser.add_argument("--orders-per-account", type=int, default=10)
    parser.add_argument("--messages", type=int, default=600)
    parser.add_argument("--skip-scan", action="store_true")
    args = parser.parse_args()
    now = datetime.now(UTC).replace(microsecond=0)
    with tempfile.TemporaryDirectory() as tmp:
        if not args.skip_scan:
            path = Path(tmp) / "scan.sqlite3"
            started = time.perf_counter()
            build(path, args.accounts, args.orders_per_account, now)
            total = args.accounts * args.orders_per_account
            print(
                f"built {args.accounts} accounts / {total} orders in "
                f"{time.perf_counter() - started:.1f}s (SQLite)"
            )
            asyncio.run(bench_scans(path, now))
        path = Path(tmp) / "send.sqlite3"
        _upgrade(f"sqlite+aiosqlite:///{path}", "head")
        asyncio.run(bench_sender(path, args.messages))


if __name__ == "__main__":
    main()
