"""/broadcast through the real dispatcher: compose, preview, confirm, progress edited in place
by the sender, the final report, stop, and the admin-only rule."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from functools import partial

from babel.dates import format_timedelta
from sqlalchemy import select, update

from handlers.broadcast import report_progress
from services.embedded import models as m
from services.outbox import OutboxSender
from tests.harness.driver import BotDriver

ADMIN = 9001


class FakeClock:
    def __init__(self, start: float) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        await asyncio.sleep(0)


async def subscribe(driver: BotDriver, *telegram_ids: int) -> None:
    async with driver.gateway.transaction() as billing:
        for telegram_id in telegram_ids:
            account, _ = await billing.get_or_create_account(telegram_id, telegram_id)
            await billing.session.execute(
                update(m.Account).where(m.Account.id == account.id).values(newsletter=True)
            )


async def broadcast_row(driver: BotDriver, broadcast_id: int = 1) -> m.Broadcast:
    async with driver.gateway.transaction() as billing:
        row = await billing.session.get(m.Broadcast, broadcast_id)
        assert row is not None
        return row


async def sender_for(driver: BotDriver, broadcast_id: int = 1, **kwargs: object) -> OutboxSender:
    """A sender whose fake clock starts when the broadcast was started."""
    started = (await broadcast_row(driver, broadcast_id)).started_at
    assert started is not None
    clock = FakeClock(started.timestamp())
    return OutboxSender(
        driver.gateway,
        driver.bot,
        clock=clock,
        sleep=clock.sleep,
        owner="test",
        progress=partial(report_progress, i18n=driver.dp["i18n"]),
        **kwargs,  # type: ignore[arg-type]
    )


async def test_broadcast_compose_preview_confirm_progress_and_report(driver: BotDriver) -> None:
    await subscribe(driver, 601, 602, 603)
    async with driver.gateway.transaction() as billing:
        await billing.get_or_create_account(604, 604)  # not subscribed
    driver.fake.block_bot(603)
    admin = driver.user(ADMIN)

    calls = await driver.send(admin, "/broadcast")
    assert calls[-1].text.startswith("📣 <b>New broadcast</b>\nSend the message")
    bold = {"entities": [{"type": "bold", "offset": 0, "length": 3}]}
    calls = await driver.send(admin, "Big news for everyone", extra=bold)
    sent = [c for c in calls if c.method == "sendMessage"]
    assert [c.text for c in sent] == [
        "👀 Preview — subscribers will receive exactly this:",
        "<b>Big</b> news for everyone",
        "Send it to 3 newsletter subscribers?",
    ]
    assert sent[-1].button_texts() == ["📣 Send to 3", "✖️ Discard"]

    calls = await driver.click(admin, sent[-1], "Send to 3")
    edit = next(c for c in calls if c.method == "editMessageText")
    assert edit["message_id"] == sent[-1].result["message_id"]
    assert edit.text == (
        "📣 <b>Broadcast #1</b> is being sent\n"
        "Sent: 0 · failed: 0 · left: 3 (of 3)\n"
        "Rate: 0.0 msg/s · ETA: unknown"
    )
    assert edit.button_texts() == ["⏹ Stop the broadcast"]
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "Queued for 3 subscribers."
    assert driver.fake.sent(601) == []  # nothing is sent from the handler itself

    sender = await sender_for(driver, batch_size=2, progress_interval=0)
    driver.fake.reset_calls()
    report = await sender.drain()
    assert (report.sent, report.unreachable) == (2, 1)
    assert [c.text for c in driver.fake.sent(601)] == ["<b>Big</b> news for everyone"]
    assert [c.text for c in driver.fake.sent(602)] == ["<b>Big</b> news for everyone"]
    edits = [c for c in driver.fake.calls_of("editMessageText") if c["chat_id"] == ADMIN]
    # After the first batch of two (1/30 s apart, the edit 1/30 s later): the progress;
    # after the last: the report.
    assert edits[0].text == (
        "📣 <b>Broadcast #1</b> is being sent\n"
        "Sent: 2 · failed: 0 · left: 1 (of 3)\n"
        "Rate: 30.0 msg/s · ETA: 1 second"
    )
    assert edits[0].button_texts() == ["⏹ Stop the broadcast"]
    row = await broadcast_row(driver)
    assert row.status == "done" and row.finished_at is not None and row.started_at
    took = format_timedelta(row.finished_at - row.started_at, threshold=2, locale="en")
    assert edits[-1].text == (
        f"📣 <b>Broadcast #1 finished</b>\nSent: 2 · failed: 1 (of 3)\nTook {took}."
    )
    assert edits[-1].button_texts() == []
    assert len(edits) == 2
    screen = driver.screen(ADMIN)
    assert screen["text"] == edits[-1].text and "reply_markup" not in screen

    # Stopping a finished broadcast changes nothing and says so.
    calls = await driver.press(admin, driver.screen_call(ADMIN), "bc:stop:1")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "This action is not available in the current state."


async def test_broadcast_can_be_stopped_midway(driver: BotDriver) -> None:
    await subscribe(driver, 611, 612, 613, 614, 615)
    admin = driver.user(ADMIN)
    await driver.send(admin, "/broadcast")
    calls = await driver.send(admin, "Maintenance tonight")
    confirm = calls[-1]
    await driver.click(admin, confirm, "Send to 5")

    sender = await sender_for(driver, batch_size=2, progress_interval=0)
    first = await sender.drain(budget=0.01)  # one batch, then the budget is over
    assert first.sent == 2
    progress = driver.screen_call(ADMIN)
    assert progress.text.startswith("📣 <b>Broadcast #1</b> is being sent\nSent: 2 · failed: 0")

    calls = await driver.click(admin, progress, "Stop")
    edit = next(c for c in calls if c.method == "editMessageText")
    assert edit.text == ("📣 <b>Broadcast #1 stopped</b>\nSent: 2 · failed: 0 · not sent: 3 (of 5)")
    assert edit.button_texts() == []
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "The broadcast is stopped."

    driver.fake.reset_calls()
    assert (await sender.drain()).sent == 0
    assert driver.fake.calls == []  # no more sends, no more progress edits
    async with driver.gateway.transaction() as billing:
        statuses = list(
            await billing.session.scalars(
                select(m.OutboxMessage.status).order_by(m.OutboxMessage.id)
            )
        )
    assert statuses == ["sent", "sent", "cancelled", "cancelled", "cancelled"]


async def test_broadcast_with_a_photo_goes_out_as_a_photo(driver: BotDriver) -> None:
    await subscribe(driver, 621)
    admin = driver.user(ADMIN)
    await driver.send(admin, "/broadcast")
    calls = await driver.send(admin, None, photo="AgACphoto-0001", caption="New DC in Amsterdam")
    preview = next(c for c in calls if c.method == "sendPhoto")
    assert (preview["photo"], preview["caption"]) == ("AgACphoto-0001", "New DC in Amsterdam")
    await driver.click(admin, calls[-1], "Send to 1")
    sender = await sender_for(driver)
    assert (await sender.drain()).sent == 1
    [photo] = driver.fake.sent(621)
    assert (photo.method, photo["photo"], photo["caption"]) == (
        "sendPhoto",
        "AgACphoto-0001",
        "New DC in Amsterdam",
    )


async def test_broadcast_is_for_admins_and_can_be_discarded(driver: BotDriver) -> None:
    stranger = driver.user(777)
    calls = await driver.send(stranger, "/broadcast")
    assert [c.text for c in calls] == ["This command is for administrators."]
    calls = await driver.press(stranger, calls[-1], "bc:stop:1")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "This command is for administrators."

    admin = driver.user(ADMIN)
    await driver.send(admin, "/broadcast")
    calls = await driver.send(admin, "x" * 4097)
    assert calls[-1].text == "The text is too long: at most 4096 characters."
    calls = await driver.send(admin, "Draft")
    assert calls[-1].text == "Send it to 0 newsletter subscribers?"
    calls = await driver.click(admin, calls[-1], "Send to 0")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "There are no newsletter subscribers yet."
    calls = await driver.click(admin, driver.screen_call(ADMIN), "Discard")
    edit = next(c for c in calls if c.method == "editMessageText")
    assert edit.text == "Broadcast discarded. Nothing was sent."
    # The draft is gone: a stale "send" button says so.
    calls = await driver.press(admin, edit, "bc:send:0")
    answer = next(c for c in calls if c.method == "answerCallbackQuery")
    assert answer["text"] == "This draft is gone. Start again with /broadcast."
    async with driver.gateway.transaction() as billing:
        assert await billing.session.scalar(select(m.Broadcast.id)) is None
    assert datetime.now(UTC)  # the dialog never touched the clock-dependent parts
