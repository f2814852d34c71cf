"""The outbox sender against the Telegram stand-in, with a fake clock and sleep: delivery,
429 retry_after, 5xx backoff, 403 unreachable, the rate limits, and claims that keep two
senders from sending the same row."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import select

from bot.factory import create_bot
from services.contracts.alerts import OutgoingMessage
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.embedded.outbox import OutboxMixin
from services.outbox import OutboxSender, RateLimiter, SendLimits, TokenBucket
from tests.conftest import make_settings
from tests.harness.session import RecordingSession
from tests.harness.telegram import Chat, FakeTelegram

START = datetime(2027, 3, 10, 12, 0, tzinfo=UTC).timestamp()


class FakeClock:
    """time.time and asyncio.sleep stand-ins: sleeping moves the clock, never waits."""

    def __init__(self, start: float = START) -> None:
        self.now = start
        self.sleeps: list[float] = []

    def __call__(self) -> float:
        return self.now

    def dt(self) -> datetime:
        return datetime.fromtimestamp(self.now, UTC)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds
        await asyncio.sleep(0)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
async def bot(fake_telegram: FakeTelegram) -> AsyncIterator[Bot]:
    settings = make_settings("sqlite+aiosqlite://")
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    yield bot


def stamp_calls(fake: FakeTelegram, clock: FakeClock) -> list[tuple[float, int, str]]:
    """Record (time, chat_id, method) of every API call the fake receives."""
    stamps: list[tuple[float, int, str]] = []
    handle = fake.handle

    async def recording(method: str, params: dict[str, Any]) -> Any:
        stamps.append((clock(), int(params.get("chat_id", 0)), method))
        return await handle(method, params)

    fake.handle = recording  # type: ignore[method-assign]
    return stamps


def sender(gateway: EmbeddedGateway, bot: Bot, clock: FakeClock, **kwargs: Any) -> OutboxSender:
    return OutboxSender(gateway, bot, clock=clock, sleep=clock.sleep, owner="test", **kwargs)


async def enqueue(
    gateway: EmbeddedGateway, chat_id: int, text: str, *, key: str | None = None, **kw: Any
) -> bool:
    async with gateway.transaction() as billing:
        return await billing.enqueue_message(
            chat_id, "sendMessage", {"text": text}, idempotency_key=key, **kw
        )


async def rows(gateway: EmbeddedGateway) -> list[m.OutboxMessage]:
    async with gateway.transaction() as billing:
        return list(
            await billing.session.scalars(select(m.OutboxMessage).order_by(m.OutboxMessage.id))
        )


async def test_sender_delivers_queued_messages_once(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    markup = {"inline_keyboard": [[{"text": "💳 Top up", "callback_data": "tu:0"}]]}
    async with sqlite_gateway.transaction() as billing:
        assert await billing.enqueue_message(
            701, "sendMessage", {"text": "<b>one</b>", "reply_markup": markup}, idempotency_key="k1"
        )
        # The same key again (a retried transaction): nothing is added.
        assert not await billing.enqueue_message(
            701, "sendMessage", {"text": "<b>one</b>"}, idempotency_key="k1"
        )
    await enqueue(sqlite_gateway, 702, "two")
    report = await sender(sqlite_gateway, bot, clock).drain()
    assert report.sent == 2
    first, second = fake_telegram.sent()
    assert (first["chat_id"], first.text, first["parse_mode"]) == (701, "<b>one</b>", "HTML")
    assert first.button_texts() == ["💳 Top up"]
    assert (second["chat_id"], second.text) == (702, "two")
    start = datetime.fromtimestamp(START, UTC)
    assert [(r.status, r.attempts, r.sent_at) for r in await rows(sqlite_gateway)] == [
        ("sent", 1, start),
        ("sent", 1, start + timedelta(seconds=1 / 30)),  # the global bucket spaces them
    ]
    assert (await sender(sqlite_gateway, bot, clock).drain()).sent == 0
    assert len(fake_telegram.sent()) == 2


async def test_429_waits_exactly_retry_after_then_sends(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    stamps = stamp_calls(fake_telegram, clock)
    await enqueue(sqlite_gateway, 711, "hello")
    # Longer than the bot's flow control waits itself (5 s, tests/test_flow_control.py): the
    # sender gets this 429.
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 6", retry_after=6)
    report = await sender(sqlite_gateway, bot, clock).drain()
    assert report.sent == 1 and report.retry_after_waits == [6]
    assert 6 in clock.sleeps
    (t1, _, _), (t2, _, _) = stamps
    assert t2 - t1 == pytest.approx(6.0)  # waited exactly retry_after, no more
    assert [c.text for c in fake_telegram.sent(711)] == ["hello"]
    [row] = await rows(sqlite_gateway)
    assert row.status == "sent"


async def test_429_pauses_every_send_not_just_the_failing_chat(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    stamps = stamp_calls(fake_telegram, clock)
    for chat in (721, 722, 723):
        await enqueue(sqlite_gateway, chat, f"to {chat}")
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    out = sender(sqlite_gateway, bot, clock, max_in_flight=1)
    assert (await out.drain()).sent == 3
    failed_at = stamps[0][0]
    assert all(t >= failed_at + 7 for t, _, _ in stamps[1:])


async def test_5xx_backs_off_and_retries_later(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    await enqueue(sqlite_gateway, 731, "later")
    fake_telegram.fail_next("sendMessage", 502, "Bad Gateway")
    out = sender(sqlite_gateway, bot, clock)
    report = await out.drain()
    assert (report.sent, report.retried) == (0, 1)
    [row] = await rows(sqlite_gateway)
    assert (row.status, row.attempts, row.error) == ("pending", 1, "Bad Gateway")
    assert row.not_before == clock.dt() + timedelta(seconds=2)
    assert row.locked_until is None
    # Not due yet: nothing happens; once due it is sent.
    assert (await out.drain()).sent == 0
    clock.now += 2
    assert (await out.drain()).sent == 1
    [row] = await rows(sqlite_gateway)
    assert (row.status, row.attempts) == ("sent", 2)
    assert [c.text for c in fake_telegram.sent(731)] == ["later"]


async def test_5xx_gives_up_after_max_attempts(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    await enqueue(sqlite_gateway, 741, "doomed")
    out = sender(sqlite_gateway, bot, clock, max_attempts=3)
    waits = []
    for _ in range(3):
        fake_telegram.fail_next("sendMessage", 500, "Internal Server Error")
        await out.drain()
        [row] = await rows(sqlite_gateway)
        waits.append((row.not_before - clock.dt()).total_seconds())
        clock.now += 600
    assert waits[:2] == [2.0, 4.0]
    [row] = await rows(sqlite_gateway)
    assert (row.status, row.attempts, row.error) == ("failed", 3, "Internal Server Error")
    assert fake_telegram.sent() == []


async def test_400_is_not_retried(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    async with sqlite_gateway.transaction() as billing:
        await billing.enqueue_message(751, "sendMessage", {"text": " "})
    report = await sender(sqlite_gateway, bot, clock).drain()
    assert report.failed == 1
    [row] = await rows(sqlite_gateway)
    assert (row.status, row.error) == ("failed", "Bad Request: message text is empty")


async def test_403_marks_the_chat_unreachable_until_the_user_writes_again(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    async with sqlite_gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(761, 761)
    fake_telegram.block_bot(761)
    await enqueue(sqlite_gateway, 761, "first")
    await enqueue(sqlite_gateway, 761, "second")
    await enqueue(sqlite_gateway, 762, "someone else")
    report = await sender(sqlite_gateway, bot, clock).drain()
    assert (report.sent, report.unreachable) == (1, 1)
    attempts = [c for c in fake_telegram.calls if c.params.get("chat_id") == 761]
    assert len(attempts) == 1 and attempts[0].error is not None
    assert attempts[0].error.status == 403
    assert [r.status for r in await rows(sqlite_gateway)] == ["unreachable", "unreachable", "sent"]
    async with sqlite_gateway.transaction() as billing:
        assert (await billing.get_account(account.id)).unreachable is True
    # Queued while unreachable: closed without a call.
    await enqueue(sqlite_gateway, 761, "third")
    await sender(sqlite_gateway, bot, clock).drain()
    assert len([c for c in fake_telegram.calls if c.params.get("chat_id") == 761]) == 1
    # The user unblocks the bot and writes: reachable again, new messages go out.
    fake_telegram.blocked.discard(761)
    async with sqlite_gateway.transaction() as billing:
        await billing.get_or_create_account(761, 761)
    await enqueue(sqlite_gateway, 761, "welcome back")
    assert (await sender(sqlite_gateway, bot, clock).drain()).sent == 1
    assert [c.text for c in fake_telegram.sent(761)] == ["welcome back"]


async def test_limits_global_per_chat_and_per_group(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    fake_telegram.add_chat(Chat(id=-100500, type="supergroup", title="Staff"))
    stamps = stamp_calls(fake_telegram, clock)
    for i in range(90):
        await enqueue(sqlite_gateway, 10_000 + i, f"bulk {i}")
    for i in range(4):
        await enqueue(sqlite_gateway, 777, f"same chat {i}")
    for i in range(25):
        await enqueue(sqlite_gateway, -100500, f"group {i}")
    out = sender(sqlite_gateway, bot, clock, batch_size=200, lease=timedelta(seconds=600))
    report = await out.drain()
    assert report.sent == 119
    times = sorted(t for t, _, _ in stamps)
    # Never more than 30 calls in any one-second window.
    assert max(sum(1 for u in times if t <= u < t + 1) for t in times) <= 30
    same = [t for t, c, _ in stamps if c == 777]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(same))
    assert [c.text for c in fake_telegram.sent(777)] == [f"same chat {i}" for i in range(4)]
    group = [t for t, c, _ in stamps if c == -100500]
    assert max(sum(1 for u in group if t <= u < t + 60) for t in group) <= 20
    # 90 bulk messages at 30/s take about 3 s; the group needs more than a minute.
    bulk = [t for t, c, _ in stamps if c >= 10_000]
    assert bulk[-1] - bulk[0] == pytest.approx(89 / 30, abs=0.05)
    assert group[-1] - group[0] > 60


def test_token_bucket_and_limiter_arithmetic() -> None:
    bucket = TokenBucket(rate=2, capacity=1, now=0)
    assert bucket.wait(0) == 0
    bucket.take(0)
    assert bucket.wait(0) == pytest.approx(0.5)
    assert bucket.wait(0.25) == pytest.approx(0.25)
    assert bucket.wait(0.5) == 0
    clock = FakeClock(0)
    limiter = RateLimiter(SendLimits(), clock)
    limiter.take(5, 0)
    assert limiter.wait(5, 0) == pytest.approx(1.0)
    assert limiter.wait(6, 0) == pytest.approx(1 / 30)
    limiter.pause(5)
    assert limiter.wait(6, 0) == pytest.approx(5)


async def test_claims_keep_two_senders_from_sending_the_same_row(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    for i in range(40):
        await enqueue(gateway, 20_000 + i, f"m{i}")
    now = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)

    async def claim(owner: str) -> list[int]:
        async with gateway.transaction() as billing:
            return [i.id for i in await billing.claim_outbox(owner, now, timedelta(seconds=60), 25)]

    a, b = await asyncio.gather(claim("a"), claim("b"))
    # Each claim takes at most its limit (PostgreSQL once claimed every free row).
    assert sorted([len(a), len(b)]) == [15, 25] and not set(a) & set(b)
    # Claimed rows are not handed out again while the lease runs; afterwards they are.
    assert await claim("c") == []
    async with gateway.transaction() as billing:
        later = await billing.claim_outbox("c", now + timedelta(seconds=61), timedelta(seconds=60))
    assert len(later) == 40


async def test_two_senders_draining_together_deliver_each_row_once(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    for i in range(30):
        await enqueue(gateway, 30_000 + i, f"m{i}")
    settings = make_settings("sqlite+aiosqlite://")
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    clock = FakeClock()
    one = OutboxSender(gateway, bot, clock=clock, sleep=clock.sleep, owner="one", batch_size=7)
    two = OutboxSender(gateway, bot, clock=clock, sleep=clock.sleep, owner="two", batch_size=7)
    first, second = await asyncio.gather(one.drain(), two.drain())
    assert first.sent + second.sent == 30
    assert sorted(c["chat_id"] for c in fake_telegram.sent()) == [30_000 + i for i in range(30)]


async def test_sender_tick_runs_under_a_lease(
    sqlite_gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    await enqueue(sqlite_gateway, 791, "once")
    one = OutboxSender(sqlite_gateway, bot, clock=clock, sleep=clock.sleep, owner="one")
    two = OutboxSender(sqlite_gateway, bot, clock=clock, sleep=clock.sleep, owner="two")
    assert (await one.tick(budget=5)).sent == 1
    await enqueue(sqlite_gateway, 791, "twice")
    assert (await two.tick(budget=5)).sent == 0  # the other instance holds the sender lease
    clock.now += 5 + 60
    assert (await two.tick(budget=5)).sent == 1


async def test_a_busy_chat_does_not_hold_the_others_back(
    sqlite_gateway: EmbeddedGateway,
    bot: Bot,
    fake_telegram: FakeTelegram,
    clock: FakeClock,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Telegram's per-chat flood control on the fake clock: a second message to a chat within
    # 1 s is refused with 429.
    fake_telegram.clock = clock
    fake_telegram.limit_chat_rate(1.0)
    stamps = stamp_calls(fake_telegram, clock)
    for i in range(30):
        await enqueue(sqlite_gateway, 900, f"busy {i}")
    for i in range(60):
        await enqueue(sqlite_gateway, 50_000 + i, f"alert {i}")
    marks: list[tuple[float, int]] = []  # (time, transaction) of each row marked sent
    mark_sent = OutboxMixin.mark_outbox_sent_many

    async def spy(self: OutboxMixin, owner: str, sent: Sequence[tuple[int, datetime]]) -> int:
        marks.extend((clock(), id(self.session)) for _ in sent)
        return await mark_sent(self, owner, sent)

    monkeypatch.setattr(OutboxMixin, "mark_outbox_sent_many", spy)
    # The first claim (20 rows) is all the busy chat's: the rows behind its head do not fill
    # the window, more rows are claimed and the other chats go out at the global rate.
    out = sender(sqlite_gateway, bot, clock, batch_size=20)
    report = await out.drain()
    assert (report.sent, report.retried, report.released) == (90, 0, 0)
    assert fake_telegram.refused() == []
    others = [t for t, chat, _ in stamps if chat != 900]
    assert len(others) == 60
    # 60 messages at 30/s (the busy chat's own once a second among them): about 2 s, where a
    # sender that finished each claimed batch first needed 19 s for the first 20 busy rows.
    assert others[-1] - START < 2.5
    busy = [t for t, chat, _ in stamps if chat == 900]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(busy))
    assert busy[-1] - busy[0] == pytest.approx(29, abs=0.1)
    assert [c.text for c in fake_telegram.sent(900)] == [f"busy {i}" for i in range(30)]
    assert [r.status for r in await rows(sqlite_gateway)] == ["sent"] * 90
    # Marked sent in batches while the others go out (10 rows or 0.5 s per transaction);
    # afterwards the busy chat's one row a second is flushed 0.5 s after it was sent.
    assert len(marks) == 90
    during = {tx for t, tx in marks if t <= others[-1] + 0.5}
    assert len(during) <= 10


async def test_a_chat_with_more_rows_than_the_sender_holds_does_not_block_the_others(
    gateway: EmbeddedGateway, bot: Bot, fake_telegram: FakeTelegram, clock: FakeClock
) -> None:
    # 2,000 rows to one chat queued before 50 others: more than the sender holds at once
    # (max_local, 1,000 by default). Claims take at most `per_chat` of the chat's rows and none
    # while its line has some, so the others go out at the global rate right away.
    fake_telegram.clock = clock
    fake_telegram.limit_chat_rate(1.0)
    stamps = stamp_calls(fake_telegram, clock)
    busy = [OutgoingMessage(901, {"text": f"busy {i}"}) for i in range(2000)]
    others = [OutgoingMessage(60_000 + i, {"text": f"alert {i}"}) for i in range(50)]
    async with gateway.transaction() as billing:
        assert await billing.enqueue_messages(busy + others) == 2050
    out = sender(gateway, bot, clock)
    report = await out.drain(budget=9.5)
    assert fake_telegram.refused() == []
    other_times = [t for t, chat, _ in stamps if chat != 901]
    assert len(other_times) == 50
    assert other_times[-1] - START < 3  # 50 messages at 30/s among the busy chat's
    busy_times = [t for t, chat, _ in stamps if chat == 901]
    assert all(b - a >= 1.0 - 1e-9 for a, b in itertools.pairwise(busy_times))
    # Once a second until the budget is over (the sender wakes at 10 s, the chat's turn).
    assert [t - START for t in busy_times] == pytest.approx(list(range(11)), abs=1e-3)
    assert [c.text for c in fake_telegram.sent(901)] == [f"busy {i}" for i in range(11)]
    # The chat's rows not sent are given back, none stays claimed.
    assert (report.sent, report.released) == (61, out.per_chat - 11)
    statuses = [(r.chat_id, r.status, r.locked_until) for r in await rows(gateway)]
    assert sum(1 for _, status, _ in statuses if status == "sent") == 61
    assert all(locked is None for _, status, locked in statuses if status == "pending")
    assert sum(1 for chat, status, _ in statuses if chat == 901 and status == "pending") == 1989


async def test_mark_outbox_sent_many_marks_only_the_owners_claimed_rows(
    gateway: EmbeddedGateway,
) -> None:
    now = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
    lease = timedelta(seconds=60)
    for i in range(5):
        await enqueue(gateway, 40_000 + i, f"m{i}")
    async with gateway.transaction() as billing:
        mine = [i.id for i in await billing.claim_outbox("a", now, lease, 3)]
        theirs = [i.id for i in await billing.claim_outbox("b", now, lease, 1)]
        # One of mine failed once before: marking it sent clears the error.
        await billing.mark_outbox_retry(mine[2], "a", now, "timeout")
        again = await billing.claim_outbox("a", now, lease, 1)
        assert [i.id for i in again] == [mine[2]]
    unclaimed = 5
    assert mine == [1, 2, 3] and theirs == [4]
    t1, t2, t3 = (now + timedelta(seconds=s) for s in (1, 2, 3))
    async with gateway.transaction() as billing:
        assert await billing.mark_outbox_sent_many("a", []) == 0
        sent = [(mine[0], t1), (mine[1], t2), (mine[2], t3), (theirs[0], t3), (unclaimed, t3)]
        assert await billing.mark_outbox_sent_many("a", sent) == 3
    assert [
        (r.id, r.status, r.sent_at, r.attempts, r.locked_by, r.locked_until, r.error)
        for r in await rows(gateway)
    ] == [
        (1, "sent", t1, 1, "a", None, None),
        (2, "sent", t2, 1, "a", None, None),
        (3, "sent", t3, 2, "a", None, None),
        (4, "pending", None, 0, "b", now + lease, None),
        (5, "pending", None, 0, None, None, None),
    ]
    # The same as mark_outbox_sent row by row.
    async with gateway.transaction() as billing:
        await billing.mark_outbox_sent(theirs[0], "b", t1)
        assert await billing.mark_outbox_sent_many("b", [(theirs[0], t1)]) == 1
    assert [(r.status, r.sent_at, r.attempts) for r in await rows(gateway)][3] == ("sent", t1, 2)


async def test_claim_skips_excluded_chats_and_takes_a_few_rows_per_chat(
    gateway: EmbeddedGateway,
) -> None:
    now = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
    lease = timedelta(seconds=60)
    async with gateway.transaction() as billing:
        broadcast = m.Broadcast(created_by=1, text="news", status="sending")
        billing.session.add(broadcast)
        await billing.session.flush()
        broadcast_id = broadcast.id
    # A broadcast row of chat 1 queued before its alerts: the alerts still come first.
    await enqueue(gateway, 1, "news 1", broadcast_id=broadcast_id)  # id 1
    for i in range(4):
        await enqueue(gateway, 1, f"alert 1.{i}")  # ids 2-5
    await enqueue(gateway, 2, "news 2", broadcast_id=broadcast_id)  # id 6
    await enqueue(gateway, 3, "alert 3.0")  # id 7
    await enqueue(gateway, 3, "alert 3.1")  # id 8
    await enqueue(gateway, 3, "later", not_before=now + timedelta(seconds=5))  # id 9
    await enqueue(gateway, 4, "alert 4.0")  # id 10

    async def claim(owner: str, limit: int = 100, **kw: Any) -> list[tuple[int, int]]:
        async with gateway.transaction() as billing:
            items = await billing.claim_outbox(owner, now, lease, limit, **kw)
        return [(i.chat_id, i.id) for i in items]

    assert await claim("a", per_chat_limit=2, exclude_chats=[4]) == [
        (1, 2), (1, 3), (3, 7), (3, 8), (2, 6)
    ]  # fmt: skip
    # Claimed rows are not free: the next claim takes each chat's next rows.
    assert await claim("b", per_chat_limit=1) == [(1, 4), (4, 10)]
    assert await claim("c", 1, exclude_chats=[1]) == []  # nothing due but chat 1's
    assert await claim("c", per_chat_limit=5) == [(1, 5), (1, 1)]
    # The limit holds across chats; exclude alone takes every row of the others.
    async with gateway.transaction() as billing:
        await billing.release_outbox(list(range(1, 11)), "a")
        await billing.release_outbox(list(range(1, 11)), "b")
        await billing.release_outbox(list(range(1, 11)), "c")
    assert await claim("d", 3, per_chat_limit=1) == [(1, 2), (3, 7), (4, 10)]
    assert await claim("e", exclude_chats=[1, 4]) == [(3, 8), (2, 6)]
    # Two claimers at once never get the same row.
    for i in range(40):
        await enqueue(gateway, 20_000 + i % 20, f"m{i}")

    first, second = await asyncio.gather(
        claim("f", 25, per_chat_limit=1, exclude_chats=[20_000]),
        claim("g", 25, per_chat_limit=1, exclude_chats=[20_001]),
    )
    assert not set(first) & set(second)
    assert len(first) + len(second) > 0
    for claimed in (first, second):
        chats = [chat for chat, _ in claimed]
        assert len(chats) == len(set(chats)) and len(chats) <= 25  # one row per chat
