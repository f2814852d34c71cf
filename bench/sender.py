"""The outbox sender against a Bot API stand-in that enforces Telegram's limits (issue 14, 2).

    python -m bench.sender [--busy 30] [--messages 3000] [--latency-ms 50] \
        [--algorithms old,new] [--tolerance-ms 10]

For each algorithm a fresh SQLite outbox gets `--busy` messages to one chat first, then
`--messages` messages to distinct chats, and one sender drains it over real time until the queue
is empty. The stand-in is the tests' FakeTelegram (tests/harness/telegram.py, in-process through
tests/harness/session.py's RecordingSession, which also fails any call made inside a
transaction) with its round-trip `latency`, wrapped so it answers 429 (retry_after 1) to a call
that breaks a limit as the call leaves the bot: more than 30 calls in any 1 s window, or a
second call to a chat within 1 s (both less `--tolerance-ms`, for the event loop's jitter).

`new` is services.outbox.OutboxSender (the window); `old` is the send loop it replaced (a
batch finished before the next claim, one transaction per sent row), kept here for the
benchmark only as LegacyOutboxSender: its drain() and send_batch() verbatim from commit
1e1e405, over the same per-call handling (_send_one) as the new sender.

Printed per algorithm: the time to drain; messages/s over it and as a share of the 30/s limit;
when the last of the distinct-chat messages arrived; the 429s the stand-in answered; the gaps
between the busy chat's messages (min/median/max); database transactions per message. Then the
new/old ratios of the same run and whether the targets are met (≥ 0.9 × 30 msg/s, no 429, the
busy chat's messages 1 s apart).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import itertools
import logging
import statistics
import tempfile
import time
from collections import deque
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bot.config import Settings
from bot.factory import create_bot, create_gateway
from services.contracts.alerts import OutboxItem, OutgoingMessage
from services.embedded.db import _upgrade
from services.outbox import OutboxSender, SendReport
from tests.harness.session import RecordingSession
from tests.harness.telegram import TOKEN, ApiError, FakeTelegram

log = logging.getLogger("services.outbox")

LIMIT = 30.0  # messages per second in all
CHAT_INTERVAL = 1.0  # seconds between two messages to one chat
BUSY_CHAT = 7 * 10**9
FIRST_CHAT = 8 * 10**9


class LegacyOutboxSender(OutboxSender):
    """The sender before the window (issue 14): claims a batch, finishes it, claims the next;
    each sent row marked in its own transaction. For the benchmark's baseline only."""

    async def _record_sent(self, item: OutboxItem, started: Any, report: SendReport) -> None:
        async with self.gateway.transaction() as billing:
            await billing.mark_outbox_sent(item.id, self.owner, started)
        report.sent += 1

    async def drain(self, *, budget: float | None = None) -> SendReport:
        """Send what is due until the queue is empty (or `budget` seconds have passed)."""
        report = SendReport()
        deadline = None if budget is None else self.clock() + budget
        while (deadline is None or self.clock() < deadline) and not self._stopping:
            async with self.gateway.transaction() as billing:
                items = await billing.claim_outbox(
                    self.owner, self.now(), self.lease, self.batch_size
                )
            if not items:
                break
            batch = await self.send_batch(items)
            report.add(batch)
            await self.report_broadcasts()
            if batch.released == len(items):
                break  # nothing could start within the claim (a long 429 pause): next tick
        if self.clock() - self._broadcasts_checked >= self.progress_interval:
            await self.report_broadcasts()  # e.g. a broadcast that had no rows at all
        self.limiter.prune()
        return report

    async def send_batch(self, items: Sequence[OutboxItem]) -> SendReport:
        """Send claimed rows, each chat in order, as fast as the buckets allow. Rows that cannot
        start before the claim would expire are given back."""
        report = SendReport()
        release_at = self.clock() + self.lease.total_seconds() * 0.8
        queue = list(items)
        self._blocked = set()  # chats that answered 403 during this batch
        tasks: set[asyncio.Task[None]] = set()
        busy: set[int] = set()  # chats with a call in flight: keep per-chat order
        slots = asyncio.Semaphore(self.max_in_flight)
        try:
            while queue and not self._stopping:
                if self._blocked:  # their rows were closed as unreachable in the database
                    queue = [i for i in queue if i.chat_id not in self._blocked]
                    if not queue:
                        break
                now = self.clock()
                ready = next(
                    (
                        i
                        for i in queue
                        if i.chat_id not in busy and self.limiter.wait(i.chat_id, now) <= 0
                    ),
                    None,
                )
                if ready is None:
                    waits = [
                        self.limiter.wait(i.chat_id, now) for i in queue if i.chat_id not in busy
                    ]
                    if waits and now + min(waits) > release_at:
                        break
                    if not waits:  # every queued chat has a call in flight
                        if tasks:
                            await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                        else:
                            await asyncio.sleep(0)
                    else:
                        await self._nap(max(min(waits), 1e-4))
                    continue
                await slots.acquire()
                if self._stopping:  # stop() came while every slot was busy
                    slots.release()
                    break
                queue.remove(ready)
                self.limiter.take(ready.chat_id, self.clock())
                busy.add(ready.chat_id)
                task = asyncio.create_task(self._legacy_guarded(ready, report, slots, busy))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                await asyncio.sleep(0)  # let it start its call now
        except asyncio.CancelledError:
            # A crash (tests cancel the task) or a shutdown that ran out of time: calls in
            # flight are abandoned; their rows stay claimed until the lease expires and are
            # then sent by whoever drains. A graceful stop() never gets here.
            for task in tasks:
                task.cancel()
            raise
        finally:
            if tasks:
                await asyncio.gather(*tasks, return_exceptions=True)
            if queue:
                async with self.gateway.transaction() as billing:
                    await billing.release_outbox([i.id for i in queue], self.owner)
                report.released += len(queue)
        return report

    async def _legacy_guarded(
        self, item: OutboxItem, report: SendReport, slots: asyncio.Semaphore, busy: set[int]
    ) -> None:
        try:
            await self._send_one(item, report)
        except Exception:
            log.exception("Outbox row %s: unexpected error", item.id)
        finally:
            busy.discard(item.chat_id)
            slots.release()


@dataclass
class LimitedTelegram(FakeTelegram):
    """FakeTelegram (with its round-trip `latency`) that refuses, with 429 and retry_after 1,
    a call breaking 30 calls in any second or 1 call per chat per second, judged when the call
    leaves the bot; refused calls count towards no limit."""

    tolerance: float = 0.010
    refused_429: int = 0
    ok: list[tuple[float, int]] = field(default_factory=list)  # (left the bot, chat) of each
    window: deque[float] = field(default_factory=deque)
    last: dict[int, float] = field(default_factory=dict)

    def allowed(self, chat_id: int, at: float) -> bool:
        while self.window and self.window[0] <= at - (1 - self.tolerance):
            self.window.popleft()
        if len(self.window) >= LIMIT:
            return False
        previous = self.last.get(chat_id)
        return previous is None or at - previous >= CHAT_INTERVAL - self.tolerance

    async def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        at = time.monotonic()
        chat_id = int(params.get("chat_id", 0))
        if method.startswith("send") and not self.allowed(chat_id, at):
            self.refused_429 += 1
            await asyncio.sleep(self.latency)
            return 429, ApiError(429, "Too Many Requests: retry after 1", 1).payload()
        if method.startswith("send"):
            self.window.append(at)
            self.last[chat_id] = at
            self.ok.append((at, chat_id))
        return await super().handle(method, params)


@dataclass
class Result:
    algorithm: str
    seconds: float
    sent: int
    others_done: float  # seconds from the start until the last distinct-chat message left
    refused: int
    gaps: list[float]
    transactions: int

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


def _settings(url: str) -> Settings:
    return Settings(
        bot_token=TOKEN,  # type: ignore[arg-type]
        database_url=url,
        telegram_api_url="http://127.0.0.1:1",
        _env_file=None,  # type: ignore[call-arg]
    )


async def run_one(
    algorithm: str, path: Path, busy: int, messages: int, latency: float, tolerance: float
) -> Result:
    url = f"sqlite+aiosqlite:///{path}"
    settings = _settings(url)
    gateway = create_gateway(settings)
    queued = [OutgoingMessage(BUSY_CHAT, {"text": f"busy {i}"}) for i in range(busy)]
    queued += [OutgoingMessage(FIRST_CHAT + i, {"text": f"alert {i}"}) for i in range(messages)]
    async with gateway.transaction() as billing:
        await billing.enqueue_messages(queued)
    fake = LimitedTelegram(latency=latency, tolerance=tolerance)
    bot = create_bot(settings, session=RecordingSession(fake))
    transactions = 0
    opened = gateway.transaction

    @contextlib.asynccontextmanager
    async def counted() -> AsyncIterator[Any]:
        nonlocal transactions
        transactions += 1
        async with opened() as billing:
            yield billing

    gateway.transaction = counted  # type: ignore[method-assign]
    cls = LegacyOutboxSender if algorithm == "old" else OutboxSender
    sender = cls(gateway, bot, owner=f"bench-{algorithm}")
    started = time.monotonic()
    report = SendReport()
    while True:
        report.add(await sender.drain())
        async with opened() as billing:
            counts = await billing.outbox_counts()
        if not counts.get("pending"):
            break
    seconds = time.monotonic() - started
    await gateway.close()
    await bot.session.close()
    if fake.calls_in_transaction:
        raise AssertionError(f"calls made inside a transaction: {fake.calls_in_transaction}")
    busy_times = [at for at, chat in fake.ok if chat == BUSY_CHAT]
    others = [at for at, chat in fake.ok if chat != BUSY_CHAT]
    return Result(
        algorithm,
        seconds,
        report.sent,
        (max(others) - started) if others else 0.0,
        fake.refused_429,
        [b - a for a, b in itertools.pairwise(busy_times)],
        transactions,
    )


def _gaps(gaps: Sequence[float]) -> str:
    if not gaps:
        return "-"
    return f"{min(gaps):.3f}/{statistics.median(gaps):.3f}/{max(gaps):.3f}"


def report(results: list[Result], busy: int, messages: int, args: argparse.Namespace) -> None:
    print(
        f"sender: {busy} messages to one chat queued first, then {messages} to distinct chats; "
        f"stand-in: {LIMIT:.0f} msg/s, 1 msg/s per chat (429 beyond, tolerance "
        f"{args.tolerance_ms} ms), {args.latency_ms} ms round trip; real time, SQLite"
    )
    header = (
        f"{'algorithm':<10}{'sent':>6}{'drain s':>9}{'msg/s':>8}{'x limit':>8}"
        f"{'others s':>10}{'429s':>6}  {'one chat gaps s min/med/max':<28}{'tx/msg':>7}"
    )
    print(header)
    for r in results:
        print(
            f"{r.algorithm:<10}{r.sent:>6}{r.seconds:>9.1f}{r.rate:>8.1f}{r.rate / LIMIT:>8.2f}"
            f"{r.others_done:>10.1f}{r.refused:>6}  {_gaps(r.gaps):<28}"
            f"{r.transactions / max(1, r.sent):>7.2f}"
        )
    by = {r.algorithm: r for r in results}
    if "old" in by and "new" in by:
        old, new = by["old"], by["new"]
        print(
            f"new/old in this run: msg/s {new.rate / old.rate:.2f}x, drain time "
            f"{new.seconds / old.seconds:.2f}x, distinct chats done "
            f"{new.others_done / old.others_done:.2f}x, transactions per message "
            f"{(new.transactions / new.sent) / (old.transactions / old.sent):.2f}x"
        )
    if "new" in by:
        new = by["new"]
        met = {True: "met", False: "NOT met"}
        ok_gaps = bool(new.gaps) and all(
            CHAT_INTERVAL - args.tolerance_ms / 1000 <= g <= CHAT_INTERVAL + 0.1 for g in new.gaps
        )
        rate_ok, none_refused = new.rate >= 0.9 * LIMIT, new.refused == 0
        print("targets (new sender):")
        print(f"  msg/s {new.rate:.1f} (≥ 0.9 x {LIMIT:.0f} = {0.9 * LIMIT:.0f}): {met[rate_ok]}")
        print(f"  429s caused {new.refused} (0): {met[none_refused]}")
        print(f"  one chat's messages {_gaps(new.gaps)} s apart (1 s, +0.1 s): {met[ok_gaps]}")


def run(args: argparse.Namespace) -> list[Result]:
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        for algorithm in args.algorithms.split(","):
            path = Path(tmp) / f"sender-{algorithm}.sqlite3"
            _upgrade(f"sqlite+aiosqlite:///{path}", "head")  # its own event loop: not in ours
            one = run_one(
                algorithm,
                path,
                args.busy,
                args.messages,
                args.latency_ms / 1000,
                args.tolerance_ms / 1000,
            )
            results.append(asyncio.run(one))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--busy", type=int, default=30, help="messages to the one chat, first")
    parser.add_argument("--messages", type=int, default=3000, help="then one each to this many")
    parser.add_argument("--latency-ms", type=int, default=50, help="the stand-in's round trip")
    parser.add_argument("--algorithms", default="old,new", help="old (the baseline), new")
    parser.add_argument("--tolerance-ms", type=int, default=10, help="of the stand-in's limits")
    args = parser.parse_args()
    logging.getLogger("services.outbox").setLevel(logging.ERROR)  # 429 warnings, if any
    logging.getLogger("bot.flow_control").setLevel(logging.ERROR)
    report(run(args), args.busy, args.messages, args)


if __name__ == "__main__":
    main()
