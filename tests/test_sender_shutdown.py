"""A graceful stop hands the outbox to another instance at once: the sender finishes the calls in
flight, gives back the rows it claimed but did not send and releases the sender lease; a
crashed sender keeps its lease until it expires. Through bot.scheduler too (ScheduledJobs.stop,
which bot.runners awaits on shutdown)."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from aiogram import Bot
from sqlalchemy import select

from bot.factory import create_bot, create_i18n
from bot.scheduler import add_jobs, create_scheduler
from services.contracts.alerts import OutboxItem
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.outbox import OutboxSender, SendReport
from tests.conftest import make_settings
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram
from tests.test_outbox import START, FakeClock, enqueue, rows

I18N = create_i18n("en")
TTL = 20 + 60  # tick(): the sender lease lasts budget + claim lease
LEASE_ENDS = START + TTL


def make_bot(fake: FakeTelegram) -> Bot:
    return create_bot(make_settings("sqlite+aiosqlite://"), session=RecordingSession(fake))


def two_senders(
    gateway: EmbeddedGateway, bot: Bot, clock: FakeClock, **kwargs: Any
) -> tuple[OutboxSender, OutboxSender]:
    return tuple(  # type: ignore[return-value]
        OutboxSender(gateway, bot, clock=clock, sleep=clock.sleep, owner=owner, **kwargs)
        for owner in ("one", "two")
    )


class Gate:
    """Wraps the stand-in: `on_call(n)` runs as the n-th call (from 1) arrives, and call number
    `hold_at` gets no answer until `go` is set (until then Telegram has not seen it)."""

    def __init__(self, fake: FakeTelegram, hold_at: int | None = None) -> None:
        self.count, self.hold_at = 0, hold_at
        self.on_call: Any = lambda n: None
        self.arrived, self.go = asyncio.Event(), asyncio.Event()
        handle = fake.handle

        async def gated(method: str, params: dict[str, Any]) -> Any:
            self.count += 1
            number = self.count
            self.on_call(number)
            if number == self.hold_at:
                self.arrived.set()
                await self.go.wait()
            return await handle(method, params)

        fake.handle = gated  # type: ignore[method-assign]


def at(timestamp: float, plus: float = 0) -> datetime:
    """As the sender writes it: its now() (microseconds) plus a ttl."""
    return datetime.fromtimestamp(timestamp, UTC) + timedelta(seconds=plus)


async def leases(gateway: EmbeddedGateway) -> list[tuple[str, str, datetime]]:
    async with gateway.transaction() as billing:
        found = await billing.session.scalars(select(m.JobLease).order_by(m.JobLease.name))
        return [(lease.name, lease.owner, lease.expires_at.replace(tzinfo=UTC)) for lease in found]


async def states(gateway: EmbeddedGateway) -> list[tuple[str, str | None, bool, int]]:
    """(status, locked_by, still claimed, attempts) of every row, oldest first."""
    return [
        (r.status, r.locked_by, r.locked_until is not None, r.attempts) for r in await rows(gateway)
    ]


def texts(fake: FakeTelegram, chat_id: int | None = None) -> list[str]:
    return [c.text for c in fake.sent(chat_id)]


async def test_graceful_stop_hands_the_rest_of_the_queue_to_the_other_instance_at_once(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    chats = (40_001, 40_002, 40_003)
    for i in range(8):
        for chat in chats:
            await enqueue(gateway, chat, f"{chat}-{i}")
    clock = FakeClock()
    one, two = two_senders(gateway, make_bot(fake_telegram), clock)
    gate = Gate(fake_telegram)
    gate.on_call = lambda n: one.stop() if n == 5 else None  # SIGTERM during the 5th call

    first = await one.tick()  # claims all 24; one chat's messages go 1 s apart
    # The 5th call finished and counts as sent; the other 19 rows went back.
    assert (first.sent, first.released, first.retried, first.failed) == (5, 19, 0, 0)
    by_one = texts(fake_telegram)
    assert by_one[:3] == ["40001-0", "40002-0", "40003-0"]
    # Which chat's second (or third) message went first depends on how fast the database
    # answers while the fake clock runs on; each chat's messages are in order.
    sent_so_far = [len(texts(fake_telegram, chat)) for chat in chats]
    assert sum(sent_so_far) == 5 and min(sent_so_far) == 1
    for chat, count in zip(chats, sent_so_far, strict=True):
        assert texts(fake_telegram, chat) == [f"{chat}-{i}" for i in range(count)]
    assert Counter(await states(gateway)) == {
        ("sent", "one", False, 1): 5,
        ("pending", "one", False, 0): 19,  # given back: claimable at once
    }
    # Until "one" closes, its lease keeps "two" out (as it did for 80 s before).
    assert (await two.tick()).sent == 0
    assert await leases(gateway) == [("outbox-sender", "one", at(LEASE_ENDS))]

    await one.close()
    assert await leases(gateway) == []
    assert (await one.tick()).sent == 0  # a closed sender takes nothing again
    taken_at = clock()
    assert taken_at - START < 60  # no lease or claim has expired
    second = await two.tick()  # "two"'s next tick
    assert (second.sent, second.released) == (19, 0)
    assert await leases(gateway) == [("outbox-sender", "two", at(taken_at, TTL))]
    for chat in chats:  # each exactly once, in order
        assert texts(fake_telegram, chat) == [f"{chat}-{i}" for i in range(8)]
    assert len(fake_telegram.calls) == 24
    senders = {r.payload["text"]: (r.status, r.locked_by) for r in await rows(gateway)}
    assert senders == {
        text: ("sent", "one" if text in by_one else "two") for text in texts(fake_telegram)
    }


async def test_stop_after_the_claim_before_any_call_gives_the_whole_batch_back(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    for chat in (41_001, 41_002, 41_003, 41_004):
        await enqueue(gateway, chat, f"to {chat}")
    clock = FakeClock()
    one, two = two_senders(gateway, make_bot(fake_telegram), clock)
    send_batch = one.send_batch

    async def stopped_in_between(items: list[OutboxItem]) -> SendReport:
        one.stop()  # SIGTERM right after the claim committed
        return await send_batch(items)

    one.send_batch = stopped_in_between  # type: ignore[method-assign,assignment]
    report = await one.tick()
    assert (report.sent, report.released) == (0, 4)
    assert fake_telegram.calls == []
    assert await states(gateway) == [("pending", "one", False, 0)] * 4
    await one.close()
    assert (await two.tick()).sent == 4
    assert texts(fake_telegram) == ["to 41001", "to 41002", "to 41003", "to 41004"]


async def test_stop_during_a_call_lets_it_finish_and_it_is_not_sent_again(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    for text in ("a", "b", "c"):
        await enqueue(gateway, 42_000, text)
    clock = FakeClock()
    one, two = two_senders(gateway, make_bot(fake_telegram), clock)
    gate = Gate(fake_telegram, hold_at=1)
    ticking = asyncio.create_task(one.tick())
    await asyncio.wait_for(gate.arrived.wait(), 10)

    one.stop()
    for _ in range(50):
        await asyncio.sleep(0)
    assert not ticking.done()  # the call in flight is not abandoned
    assert await states(gateway) == [("pending", "one", True, 0)] * 3
    gate.go.set()
    report = await asyncio.wait_for(ticking, 10)
    assert (report.sent, report.released) == (1, 2)
    assert await states(gateway) == [("sent", "one", False, 1)] + [("pending", "one", False, 0)] * 2

    await one.close()
    assert (await two.tick()).sent == 2
    assert texts(fake_telegram, 42_000) == ["a", "b", "c"]
    assert len(fake_telegram.calls) == 3


async def test_stop_cuts_a_long_429_wait_short_and_gives_the_row_back(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    await enqueue(gateway, 43_000, "after the flood")
    clock = FakeClock()
    waiting = asyncio.Event()

    async def sleep(seconds: float) -> None:
        if seconds >= 10:  # a real long wait: only stop() ends it
            waiting.set()
            await asyncio.Event().wait()
        await clock.sleep(seconds)

    bot = make_bot(fake_telegram)
    one = OutboxSender(gateway, bot, clock=clock, sleep=sleep, owner="one")
    two = OutboxSender(gateway, bot, clock=clock, sleep=clock.sleep, owner="two")
    fake_telegram.fail_next("sendMessage", 429, "Too Many Requests: retry after 30", retry_after=30)
    ticking = asyncio.create_task(one.tick())
    await asyncio.wait_for(waiting.wait(), 10)

    one.stop()
    report = await asyncio.wait_for(ticking, 10)
    assert (report.sent, report.released, report.retried, report.retry_after_waits) == (
        0,
        1,
        0,
        [30],
    )
    # Telegram refused the call: nothing was sent, no attempt is counted.
    assert await states(gateway) == [("pending", "one", False, 0)]
    await one.close()
    assert (await two.tick()).sent == 1
    assert [(c.error.status if c.error else None) for c in fake_telegram.calls] == [429, None]
    assert texts(fake_telegram, 43_000) == ["after the flood"]


async def test_a_crashed_sender_keeps_its_lease_until_it_expires(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    for text in ("a", "b"):
        await enqueue(gateway, 44_000, text)
    clock = FakeClock()
    one, two = two_senders(gateway, make_bot(fake_telegram), clock)
    gate = Gate(fake_telegram, hold_at=1)  # never answered
    ticking = asyncio.create_task(one.tick())
    await asyncio.wait_for(gate.arrived.wait(), 10)
    ticking.cancel()  # the crash (SIGKILL): no stop(), no close()
    with pytest.raises(asyncio.CancelledError):
        await ticking

    assert await leases(gateway) == [("outbox-sender", "one", at(LEASE_ENDS))]
    assert (await two.tick()).sent == 0
    clock.now = LEASE_ENDS - 1
    assert (await two.tick()).sent == 0
    assert fake_telegram.sent() == []
    clock.now = LEASE_ENDS  # the lease has run out: "two" takes over
    assert (await two.tick()).sent == 2
    assert texts(fake_telegram, 44_000) == ["a", "b"]
    assert await leases(gateway) == [("outbox-sender", "two", at(LEASE_ENDS, TTL))]


# ---- through bot.scheduler --------------------------------------------------------------------
async def test_scheduler_stop_waits_for_the_call_in_flight_then_releases_the_sender_lease(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    for text in ("a", "b", "c"):
        await enqueue(gateway, 45_000, text)
    settings = make_settings("sqlite+aiosqlite://")
    scheduler = create_scheduler(settings)
    jobs = add_jobs(scheduler, settings, gateway, make_bot(fake_telegram), I18N)
    for name in ("alerts", "rates", "ticket_reminders"):
        scheduler.remove_job(name)
    gate = Gate(fake_telegram, hold_at=1)
    scheduler.start()
    scheduler.get_job("outbox").modify(next_run_time=datetime.now(UTC))
    await asyncio.wait_for(gate.arrived.wait(), 10)
    assert [(n, o) for n, o, _ in await leases(gateway)] == [("outbox-sender", jobs.sender.owner)]

    stopping = asyncio.create_task(jobs.stop(scheduler))
    await asyncio.sleep(0.2)
    assert not stopping.done()  # waits for the call in flight
    gate.go.set()
    await asyncio.wait_for(stopping, 10)
    assert not scheduler.running
    assert await leases(gateway) == []
    owner = jobs.sender.owner
    assert await states(gateway) == [("sent", owner, False, 1)] + [("pending", owner, False, 0)] * 2

    clock = FakeClock(time.time())
    two = OutboxSender(
        gateway, make_bot(fake_telegram), clock=clock, sleep=clock.sleep, owner="two"
    )
    assert (await two.tick()).sent == 2
    assert texts(fake_telegram, 45_000) == ["a", "b", "c"]
    assert len(fake_telegram.calls) == 3


async def test_scheduler_stop_gives_back_the_lease_of_a_run_it_cut_short_only(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram, monkeypatch: pytest.MonkeyPatch
) -> None:
    entered = asyncio.Event()

    async def hang(*args: Any) -> None:
        entered.set()
        await asyncio.Event().wait()

    monkeypatch.setattr("handlers.staff.remind_unanswered", hang)
    settings = make_settings("sqlite+aiosqlite://")
    scheduler = create_scheduler(settings)
    jobs = add_jobs(scheduler, settings, gateway, make_bot(fake_telegram), I18N)
    scheduler.remove_job("rates")  # it would go to the network
    scheduler.start()
    now = datetime.now(UTC)
    for name in ("alerts", "ticket_reminders", "outbox"):
        scheduler.get_job(name).modify(next_run_time=now)
    await asyncio.wait_for(entered.wait(), 10)

    # Alerts ran and finished, the sender ticked, the reminders hang.
    expected = ["alerts", "outbox-sender", "ticket_reminders"]
    for _ in range(1000):
        held = await leases(gateway)
        if [name for name, _, _ in held] == expected and jobs.in_progress == {"ticket_reminders"}:
            break
        await asyncio.sleep(0.01)
    assert [name for name, _, _ in held] == expected
    assert jobs.in_progress == {"ticket_reminders"}
    alerts_lease = held[0]
    await jobs.stop(scheduler, timeout=0.1)
    # The finished run keeps its lease (no second run within the interval); the run cut short
    # and the sender give theirs back.
    assert await leases(gateway) == [alerts_lease]
    assert alerts_lease[:2] == ("alerts", jobs.sender.owner)
    assert jobs.in_progress == set()
    assert not scheduler.running
