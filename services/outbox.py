"""The one sender of the outbox: drains queued API calls within Telegram's limits.

- Token buckets: about 30 messages/s in all, 1/s per chat, 20/minute per group chat.
- A window, not batches: claimed rows wait in one line per chat (claim order: alerts and
  relays before broadcasts, oldest first); a call starts for the chat whose turn has come and
  whose next row comes first in that order, so a chat that must wait for its interval never
  holds the others back. At most one call per chat is in flight (a chat's messages go out in
  their queue order). More rows are claimed
  whenever fewer than half of `batch_size` chats have a call in flight or a row at the head of
  their line (rows queued behind a chat's head do not count, at most `max_local` rows are held),
  and the queue is polled again every `poll_interval` once a claim came back short. A claim
  takes no row of a chat that still has rows in its line, and at most `per_chat` rows of one
  chat (what the slowest chat, a group, can send within the claim's lease): a chat with a long
  queue gets its next rows as soon as its line has run out (a claim then, whatever the window),
  and never fills a claim by itself.
- 429: waits exactly `retry_after` (every send pauses), then retries the same message.
- 5xx, network errors, timeouts: the row goes back to the queue with an exponential backoff;
  after `max_attempts` it is failed.
- 403 (blocked, deactivated, kicked): the chat is marked unreachable and its queued rows are
  closed; nothing is sent there until the user writes again. With a `mailer` that can send
  (SMTP configured), alerts (rows with an e-mail copy) go by e-mail to the account's confirmed
  address instead: services/outbox_email.py, run by `tick` after the Telegram queue.
- Rows are claimed (locked_by/locked_until) before sending, so two senders (two instances, or
  an overlapping run) never send the same row; a crashed sender's claims expire after `lease`.
  A row that cannot start within 80 % of its claim's lease is given back (with the rest of its
  chat's line, to keep the chat's order).
- A row is marked sent only after its API call returned, in batches: up to `mark_batch` rows
  per transaction and statement, flushed at the latest `mark_interval` seconds after the
  oldest, before every claim and when the sender stops. The rows stay claimed by this sender
  until then, so nobody else sends them; a crash repeats at most the calls in flight and the
  calls of the last unflushed batch (≤ `mark_batch` rows of the last `mark_interval` seconds),
  never loses one.
- Graceful shutdown: `stop()` starts no new call (a rate-limit or 429 wait is cut short), lets
  the calls in flight finish, records what was sent and gives every claimed row it has not sent
  back; `close()` then gives the sender lease back, so another instance's next tick takes over
  at once. A killed sender gives nothing back: its lease (and its claims) expire.

The clock and the sleep are injectable: tests drive the sender with a fake clock and check
that a 429 waited `retry_after` without sleeping for real.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, cast

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods import (
    CopyMessage,
    EditMessageText,
    SendDocument,
    SendMessage,
    SendPhoto,
    TelegramMethod,
)

from services.billing import BillingGateway
from services.contracts.alerts import BroadcastInfo, OutboxItem
from services.contracts.store import CustomerCopy, ticket_of_outbox_key
from services.email import Mailer, mailer_configured
from services.outbox_email import OutboxMailer

log = logging.getLogger(__name__)

METHODS: dict[str, type[TelegramMethod[Any]]] = {
    "sendMessage": SendMessage,
    "sendPhoto": SendPhoto,
    "sendDocument": SendDocument,
    "copyMessage": CopyMessage,
    "editMessageText": EditMessageText,
}

ProgressReporter = Callable[[Bot, BroadcastInfo, datetime, bool], Awaitable[None]]
"""Shows a broadcast's progress to its admin (handlers/broadcast.py) as of the given time;
True: the final report."""


def default_owner() -> str:
    return f"{socket.gethostname()[:30]}:{os.getpid()}:{uuid.uuid4().hex[:8]}"


class TokenBucket:
    """`rate` tokens per second, at most `capacity` saved up."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity = rate, capacity
        self.tokens, self.stamp = capacity, now

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def wait(self, now: float) -> float:
        """Seconds until a token is available (0: now)."""
        self._refill(now)
        return 0.0 if self.tokens >= 1 - 1e-4 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens = min(self.tokens, 1.0) - 1  # absorb float dust from the refill

    def idle(self, now: float) -> bool:
        self._refill(now)
        return self.tokens >= self.capacity


@dataclass(frozen=True)
class SendLimits:
    global_per_second: float = 30.0
    global_burst: float = 1.0  # spread evenly: never more than `global_per_second` in any second
    chat_interval: float = 1.0
    group_per_minute: float = 20.0


class RateLimiter:
    """The global bucket, one per chat and one per group chat (negative chat ids)."""

    def __init__(self, limits: SendLimits, clock: Callable[[], float]) -> None:
        self.limits, self.clock = limits, clock
        self.global_bucket = TokenBucket(limits.global_per_second, limits.global_burst, clock())
        self.chats: dict[int, TokenBucket] = {}
        self.groups: dict[int, TokenBucket] = {}
        self.paused_until = 0.0

    def _chat(self, chat_id: int) -> TokenBucket:
        bucket = self.chats.get(chat_id)
        if bucket is None:
            bucket = self.chats[chat_id] = TokenBucket(
                1 / self.limits.chat_interval, 1, self.clock()
            )
        return bucket

    def _group(self, chat_id: int) -> TokenBucket | None:
        if chat_id >= 0:
            return None
        bucket = self.groups.get(chat_id)
        if bucket is None:
            # Evenly spread: any minute sees at most `group_per_minute` (a saved-up burst
            # would add to the minute's allowance).
            bucket = self.groups[chat_id] = TokenBucket(
                self.limits.group_per_minute / 60, 1, self.clock()
            )
        return bucket

    def chat_wait(self, chat_id: int, now: float) -> float:
        group = self._group(chat_id)
        return max(self._chat(chat_id).wait(now), group.wait(now) if group else 0.0)

    def global_wait(self, now: float) -> float:
        """Seconds until any call may start: the global bucket and a 429 pause."""
        return max(self.paused_until - now, self.global_bucket.wait(now))

    def wait(self, chat_id: int, now: float) -> float:
        return max(self.global_wait(now), self.chat_wait(chat_id, now))

    def take(self, chat_id: int, now: float) -> None:
        self.global_bucket.take(now)
        self._chat(chat_id).take(now)
        group = self._group(chat_id)
        if group:
            group.take(now)

    def pause(self, seconds: float) -> None:
        self.paused_until = max(self.paused_until, self.clock() + seconds)

    def prune(self) -> None:
        now = self.clock()
        for buckets in (self.chats, self.groups):
            for chat_id in [c for c, b in buckets.items() if b.idle(now)]:
                del buckets[chat_id]


@dataclass
class SendReport:
    sent: int = 0
    retried: int = 0
    failed: int = 0
    unreachable: int = 0
    released: int = 0
    emailed: int = 0  # alerts of unreachable chats that went by e-mail
    retry_after_waits: list[float] = field(default_factory=list)

    def add(self, other: SendReport) -> None:
        self.sent += other.sent
        self.emailed += other.emailed
        self.retried += other.retried
        self.failed += other.failed
        self.unreachable += other.unreachable
        self.released += other.released
        self.retry_after_waits += other.retry_after_waits


def _error_text(exc: BaseException) -> str:
    return (getattr(exc, "message", None) or str(exc) or type(exc).__name__)[:300]


@dataclass
class _Claimed:
    item: OutboxItem
    release_at: float  # by the sender's clock: not started by then, the row is given back


class OutboxSender:
    def __init__(
        self,
        gateway: BillingGateway,
        bot: Bot,
        *,
        limits: SendLimits | None = None,
        clock: Callable[[], float] = time.time,
        sleep: Callable[[float], Awaitable[Any]] = asyncio.sleep,
        owner: str | None = None,
        batch_size: int = 100,
        lease: timedelta = timedelta(seconds=60),
        max_attempts: int = 8,
        max_backoff: float = 600.0,
        max_retry_after: int = 5,
        max_in_flight: int = 16,
        request_timeout: int = 20,
        progress: ProgressReporter | None = None,
        progress_interval: float = 3.0,
        mark_batch: int = 10,
        mark_interval: float = 0.5,
        poll_interval: float = 1.0,
        max_local: int | None = None,
        mailer: Mailer | None = None,
    ) -> None:
        self.gateway, self.bot = gateway, bot
        self.clock, self.sleep = clock, sleep
        self.limiter = RateLimiter(limits or SendLimits(), clock)
        self.owner = owner or default_owner()
        self.batch_size, self.lease = batch_size, lease
        self.max_attempts, self.max_backoff = max_attempts, max_backoff
        self.max_retry_after = max_retry_after
        self.max_in_flight, self.request_timeout = max_in_flight, request_timeout
        self.progress, self.progress_interval = progress, progress_interval
        self.mark_batch, self.mark_interval = max(1, mark_batch), mark_interval
        self.poll_interval = poll_interval
        self.max_local = max_local or 10 * max(1, batch_size)
        # Rows of one chat per claim: as many as the slowest chat (a group) can start within
        # the part of the lease a claimed row may wait; the rest would only be given back.
        slowest = min(
            self.limiter.limits.group_per_minute / 60, 1 / self.limiter.limits.chat_interval
        )
        self.per_chat = max(1, int(lease.total_seconds() * 0.8 * slowest))
        self._reported: dict[int, float] = {}
        self._stopping = False
        self._stopped = asyncio.Event()
        self._wake = asyncio.Event()  # a call ended, or enough marks to flush
        self._lease_name: str | None = None  # the sender lease this instance has taken
        self._lease_until = 0.0  # ... and until when it holds it, by self.clock()
        self._broadcasts_checked = 0.0
        self._blocked: set[int] = set()  # chats that answered 403 (their rows are closed)
        self._deadline: float | None = None  # drain(budget=...): no claim after it
        self._marks: list[tuple[OutboxItem, datetime]] = []  # sent, not yet recorded
        self._links: list[CustomerCopy] = []  # sent ticket messages, linked with the marks
        self._marks_since = 0.0  # when the oldest of them was sent, by self.clock()
        # Alerts of chats that blocked the bot go by e-mail when SMTP is configured.
        self.emails = (
            OutboxMailer(gateway, mailer, owner=self.owner, clock=clock)
            if mailer is not None and mailer_configured(mailer)
            else None
        )

    def stop(self) -> None:
        """Graceful shutdown: no new call starts; the calls in flight finish, claimed rows not
        yet sent are given back and the running tick returns. Then `close()`."""
        self._stopping = True
        self._stopped.set()
        if self.emails is not None:
            self.emails.stop()

    async def close(self) -> None:
        """After stop() and the last tick: give the sender lease back (its own short
        transaction, no call is in flight any more), so that another instance's next tick
        takes over at once instead of waiting for the lease to expire."""
        self.stop()
        name, self._lease_name, self._lease_until = self._lease_name, None, 0.0
        if name is not None:
            async with self.gateway.transaction() as billing:
                await billing.release_job_lease(name, self.owner)  # only if this owner's

    async def _nap(self, seconds: float) -> bool:
        """Sleep `seconds` unless stop() comes first; False: stopping."""
        if self._stopping:
            return False
        nap = asyncio.ensure_future(self.sleep(seconds))
        stopped = asyncio.ensure_future(self._stopped.wait())
        try:
            await asyncio.wait({nap, stopped}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            nap.cancel()
            stopped.cancel()
        return not self._stopping

    async def _idle(self, turn: float, housekeeping: float, calls_in_flight: bool) -> None:
        """Wait until a call ends, stop() comes, or the next turn (a chat's or the global
        bucket's, by the injected sleep) or housekeeping (marks to flush, the next poll, claims
        to give back) is due. While calls are in flight housekeeping waits on the event loop's
        own time: each call that ends re-checks it anyway, and a test's fake sleep (which moves
        its clock) must not jump ahead for it."""
        if self._stopping or self._wake.is_set():
            return
        waiters: set[asyncio.Future[Any]] = {
            asyncio.ensure_future(self._stopped.wait()),
            asyncio.ensure_future(self._wake.wait()),
        }
        if not calls_in_flight:
            turn = min(turn, housekeeping)
        elif math.isfinite(housekeeping):
            waiters.add(asyncio.ensure_future(asyncio.sleep(max(housekeeping, 1e-4))))
        if math.isfinite(turn):
            waiters.add(asyncio.ensure_future(self.sleep(max(turn, 1e-4))))
        try:
            await asyncio.wait(waiters, return_when=asyncio.FIRST_COMPLETED)
        finally:
            for waiter in waiters:
                waiter.cancel()

    def now(self) -> datetime:
        return datetime.fromtimestamp(self.clock(), UTC)

    # ---- draining ---------------------------------------------------------------------------
    async def drain(self, *, budget: float | None = None) -> SendReport:
        """Send what is due until the queue is empty (or `budget` seconds have passed: then no
        more rows are claimed, and rows whose chat would have to wait are given back)."""
        report = SendReport()
        self._deadline = None if budget is None else self.clock() + budget
        try:
            if not self._stopping and (self._deadline is None or self.clock() < self._deadline):
                items = await self._claim(self.batch_size, ())
                if items:
                    report.add(await self.send_batch(items))
                    await self.report_broadcasts()
        finally:
            self._deadline = None
        if self.clock() - self._broadcasts_checked >= self.progress_interval:
            await self.report_broadcasts()  # e.g. a broadcast that had no rows at all
        self.limiter.prune()
        return report

    async def tick(self, *, lease_name: str = "outbox-sender", budget: float = 20.0) -> SendReport:
        """One scheduler run: only the instance holding the sender lease drains (the rate
        limits are per bot, not per instance)."""
        if self._stopping:
            return SendReport()
        ttl = budget + self.lease.total_seconds()
        if self.clock() + budget + 5 > self._lease_until:  # renew well before it runs out
            self._lease_name = lease_name  # before: close() releases it even if cut short here
            async with self.gateway.transaction() as billing:
                if not await billing.acquire_job_lease(
                    lease_name, self.owner, self.now(), timedelta(seconds=ttl)
                ):
                    self._lease_until = 0.0
                    return SendReport()
            self._lease_until = self.clock() + ttl
        started = self.clock()
        report = await self.drain(budget=budget)
        if self.emails is not None and not self._stopping:
            # Some time for e-mails even when the Telegram queue took the whole budget.
            left = max(budget * 0.2, budget - (self.clock() - started))
            report.emailed += (await self.emails.send_due(budget=left)).emailed
        return report

    async def send_batch(self, items: Sequence[OutboxItem]) -> SendReport:
        """Send claimed rows and keep the window full: claim more while there is room, until
        the queue is empty, the drain's budget is over or stop() is called. Each chat's rows go
        in order, one call at a time, as fast as its bucket allows; the others do not wait for
        it. Rows that cannot start before their claim would expire are given back."""
        report = SendReport()
        share = self.lease.total_seconds() * 0.8
        lines: dict[int, deque[_Claimed]] = {}  # per chat, in claim order; oldest chat first
        held = 0  # rows in `lines`
        tasks: set[asyncio.Task[None]] = set()
        busy: set[int] = set()  # chats with a call in flight: keep per-chat order
        window = max(1, self.batch_size)
        next_poll = 0.0  # the last claim came back short: the queue is polled again then
        full: set[int] = set()  # chats whose last claim brought `per_chat` rows: maybe more
        hungry = False  # such a chat's line has run out: claim its next rows now
        self._blocked = set()
        self._wake.clear()

        def add(claimed: Iterable[OutboxItem], at: float) -> int:
            per_chat: dict[int, int] = {}
            for item in claimed:
                lines.setdefault(item.chat_id, deque()).append(_Claimed(item, at + share))
                per_chat[item.chat_id] = per_chat.get(item.chat_id, 0) + 1
            for chat, count in per_chat.items():
                (full.add if count >= self.per_chat else full.discard)(chat)
            return sum(per_chat.values())

        async def give_back(chats: Iterable[int]) -> None:
            nonlocal held
            ids = [c.item.id for chat in list(chats) for c in lines.pop(chat, ())]
            if ids:
                held -= len(ids)
                async with self.gateway.transaction() as billing:
                    await billing.release_outbox(ids, self.owner)
                report.released += len(ids)

        held += add(items, self.clock())
        try:
            while not self._stopping:
                self._wake.clear()
                now = self.clock()
                if self._blocked:  # 403: their rows were closed as unreachable in the database
                    for chat in self._blocked:
                        held -= len(lines.pop(chat, ()))
                    self._blocked.clear()
                expired = [chat for chat, line in lines.items() if line[0].release_at <= now]
                past = self._deadline is not None and now >= self._deadline
                if past:  # no more claims; whoever must wait for their chat goes back now
                    expired += [
                        chat
                        for chat in lines
                        if chat in busy or self.limiter.chat_wait(chat, now) > 0
                    ]
                if expired:
                    await give_back(dict.fromkeys(expired))
                    continue
                if self._marks and (
                    len(self._marks) >= self.mark_batch
                    or now - self._marks_since >= self.mark_interval
                ):
                    await self._flush_marks(report)
                    continue
                active = len(busy) + sum(1 for chat in lines if chat not in busy)
                idle = not lines and not tasks
                paused = self.limiter.paused_until > now
                room = not past and not paused and 2 * active < window and held < self.max_local
                refill = hungry and not past and not paused and held < self.max_local
                if (room and (idle or now >= next_poll)) or refill:
                    hungry = False
                    await self._flush_marks(report)
                    await self.report_broadcasts()
                    limit = max(1, min(window - active, self.max_local - held))
                    claimed = await self._claim(limit, lines)  # not the chats in line
                    if len(claimed) < limit:
                        next_poll = self.clock() + self.poll_interval
                    held += add(claimed, self.clock())
                    if idle and not claimed:
                        break
                    continue
                if idle:
                    break  # past the budget, or in a long 429 pause: the next tick goes on
                wait = math.inf  # until something can start
                if len(tasks) < self.max_in_flight:
                    ready, first = None, (True, math.inf)
                    for chat, line in lines.items():
                        if chat in busy:
                            continue
                        chat_wait = self.limiter.chat_wait(chat, now)
                        if chat_wait <= 0:
                            # The earliest head in claim order: a chat refilled after its line
                            # ran out keeps its place (it is at the end of `lines`).
                            head = line[0].item
                            key = (head.broadcast_id is not None, float(head.id))
                            if key < first:
                                ready, first = chat, key
                            continue
                        wait = min(wait, chat_wait)
                    if ready is not None:
                        wait = self.limiter.global_wait(now)
                        if wait <= 0:
                            line = lines[ready]
                            item = line.popleft().item
                            if not line:
                                del lines[ready]
                                hungry = hungry or ready in full
                            held -= 1
                            self.limiter.take(ready, self.clock())
                            busy.add(ready)
                            task = asyncio.create_task(self._send_guarded(item, report, busy))
                            tasks.add(task)
                            task.add_done_callback(tasks.discard)
                            await asyncio.sleep(0)  # let it start its call now
                            continue
                timers = [math.inf]
                if lines:  # give rows back early (a call ending re-checks anyway)
                    timers.append(min(line[0].release_at for line in lines.values()) - now)
                if self._marks:
                    timers.append(self._marks_since + self.mark_interval - now)
                if room:
                    timers.append(next_poll - now)
                await self._idle(wait, min(timers), bool(tasks))
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
            await self._flush_marks(report)
            if self._blocked:
                for chat in self._blocked:
                    lines.pop(chat, None)
            await give_back(list(lines))
        return report

    async def _claim(self, limit: int, exclude: Iterable[int]) -> list[OutboxItem]:
        async with self.gateway.transaction() as billing:
            return await billing.claim_outbox(
                self.owner,
                self.now(),
                self.lease,
                limit,
                exclude_chats=list(exclude),
                per_chat_limit=self.per_chat,
                email_fallback=self.emails is not None,
            )

    async def _flush_marks(self, report: SendReport) -> None:
        """Record the rows sent since the last flush: one transaction for all of them."""
        if not self._marks:
            return
        marks, self._marks = self._marks, []
        links, self._links = self._links, []
        try:
            async with self.gateway.transaction() as billing:
                marked = await billing.mark_outbox_sent_many(
                    self.owner, [(item.id, started) for item, started in marks]
                )
                for link in links:
                    await billing.link_customer_message(link)
        except Exception:
            # Still claimed by this sender: tried again at the next flush; if that never comes
            # (a crash), the claims expire and the rows are sent again, as after a crash.
            log.exception("Outbox rows %s: marking them sent failed", [i.id for i, _ in marks])
            if not self._stopping:
                self._marks = marks + self._marks
                self._links = links + self._links
                self._marks_since = self.clock()
            return
        if marked < len(marks):  # their claims had expired and another sender took them
            log.warning(
                "Outbox: %s of %s sent rows were no longer claimed by it",
                len(marks) - marked,
                len(marks),
            )
        report.sent += len(marks)

    async def _record_sent(
        self, item: OutboxItem, started: datetime, report: SendReport, result: Any = None
    ) -> None:
        """The call succeeded: the row is marked sent at the next flush (see send_batch); a
        ticket's message to its customer is linked to the ticket then (a reply to it reaches the
        ticket: services/contracts/store.py TICKET_MESSAGE_KEY_KINDS)."""
        ticket_id = ticket_of_outbox_key(item.idempotency_key)
        message_id = getattr(result, "message_id", None)
        if ticket_id is not None and isinstance(message_id, int):
            self._links.append(CustomerCopy(item.chat_id, message_id, ticket_id))
        if not self._marks:
            self._marks_since = self.clock()
        self._marks.append((item, started))
        if len(self._marks) >= self.mark_batch:
            self._wake.set()

    async def _send_guarded(self, item: OutboxItem, report: SendReport, busy: set[int]) -> None:
        try:
            await self._send_one(item, report)
        except Exception:
            log.exception("Outbox row %s: unexpected error", item.id)
        finally:
            busy.discard(item.chat_id)
            self._wake.set()

    def _method(self, item: OutboxItem) -> TelegramMethod[Any]:
        cls: Any = METHODS[item.method]  # each takes chat_id; the base class does not say so
        return cast(TelegramMethod[Any], cls(chat_id=item.chat_id, **item.payload))

    async def _send_one(self, item: OutboxItem, report: SendReport) -> None:
        if item.method not in METHODS:
            await self._failed(item, f"unsupported method {item.method}", report)
            return
        waits = 0
        while True:
            started = self.now()
            try:
                result = await self.bot(self._method(item), request_timeout=self.request_timeout)
            except TelegramRetryAfter as exc:
                waits += 1
                report.retry_after_waits.append(exc.retry_after)
                log.warning("429 on outbox row %s: waiting %s s", item.id, exc.retry_after)
                self.limiter.pause(exc.retry_after)
                if not await self._nap(exc.retry_after):
                    await self._give_back(item, report)  # stopping; Telegram sent nothing
                    return
                if waits > self.max_retry_after:
                    await self._retry(item, exc, report)
                    return
                if not await self._wait_turn(item.chat_id, until_stopped=True):
                    await self._give_back(item, report)
                    return
                continue
            except TelegramForbiddenError as exc:
                async with self.gateway.transaction() as billing:
                    await billing.mark_outbox_unreachable(
                        item.id,
                        item.chat_id,
                        _error_text(exc),
                        email_fallback=self.emails is not None,
                    )
                report.unreachable += 1
                self._blocked.add(item.chat_id)
                log.info("Chat %s is unreachable: %s", item.chat_id, _error_text(exc))
                return
            except (TelegramServerError, TelegramNetworkError, TimeoutError) as exc:
                await self._retry(item, exc, report)
                return
            except (TelegramBadRequest, TelegramAPIError, ValueError) as exc:
                await self._failed(item, _error_text(exc), report)
                return
            await self._record_sent(item, started, report, result)
            return

    async def _wait_turn(self, chat_id: int, *, until_stopped: bool = False) -> bool:
        """Wait for the chat's turn and take it; with `until_stopped`, stop() cuts the wait
        short (False: the turn was not taken)."""
        while (wait := self.limiter.wait(chat_id, self.clock())) > 0:
            if until_stopped:
                if not await self._nap(wait):
                    return False
            else:
                await self.sleep(wait)
        self.limiter.take(chat_id, self.clock())
        return True

    async def _give_back(self, item: OutboxItem, report: SendReport) -> None:
        async with self.gateway.transaction() as billing:
            await billing.release_outbox([item.id], self.owner)
        report.released += 1

    def backoff(self, attempts: int) -> float:
        """Seconds before attempt number `attempts + 1`: 2, 4, 8, ... up to max_backoff."""
        return min(self.max_backoff, 2.0 ** max(1, attempts))

    async def _retry(self, item: OutboxItem, exc: BaseException, report: SendReport) -> None:
        attempts = item.attempts + 1
        if attempts >= self.max_attempts:
            await self._failed(item, _error_text(exc), report)
            return
        not_before = self.now() + timedelta(seconds=self.backoff(attempts))
        async with self.gateway.transaction() as billing:
            await billing.mark_outbox_retry(item.id, self.owner, not_before, _error_text(exc))
        report.retried += 1
        log.warning("Outbox row %s: %s; retry at %s", item.id, _error_text(exc), not_before)

    async def _failed(self, item: OutboxItem, error: str, report: SendReport) -> None:
        async with self.gateway.transaction() as billing:
            await billing.mark_outbox_failed(item.id, self.owner, error)
        report.failed += 1
        log.warning("Outbox row %s failed: %s", item.id, error)

    # ---- broadcast progress -------------------------------------------------------------------
    async def report_broadcasts(self) -> None:
        """Edit each running broadcast's progress message (at most every progress_interval) and
        give the final report once nothing is left to send."""
        self._broadcasts_checked = self.clock()
        async with self.gateway.transaction() as billing:
            active = await billing.active_broadcasts()
        for info in active:
            final = info.pending == 0
            if final:
                async with self.gateway.transaction() as billing:
                    if not await billing.finish_broadcast(info.id, self.now()):
                        continue
                    info = await billing.get_broadcast(info.id)
            elif self.clock() - self._reported.get(info.id, 0.0) < self.progress_interval:
                continue
            self._reported[info.id] = self.clock()
            if final:
                self._reported.pop(info.id, None)
            if self.progress is None or info.progress_chat_id is None:
                continue
            await self._wait_turn(info.progress_chat_id)  # an edit is an API call too
            try:
                await self.progress(self.bot, info, self.now(), final)
            except TelegramAPIError as exc:
                log.warning("Broadcast %s progress not shown: %s", info.id, _error_text(exc))
