"""A crash between writing an alert to the outbox and sending it neither loses nor repeats it.

The first test kills a real process (SIGKILL) that has run the alert scan and is inside the
sender's API call; the second cancels a sender task mid-call. After a restart: exactly one
delivery, and a repeated scan queues nothing new."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import textwrap
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from sqlalchemy import select, update

import keyboards.alerts as alert_kb
from bot.factory import create_bot, create_i18n
from services.alerts import AlertPolicy, scan_low_balance
from services.embedded import models as m
from services.embedded.billing import EmbeddedGateway
from services.outbox import OutboxSender
from tests.conftest import make_settings
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
NOW = datetime(2027, 3, 10, 12, 0, tzinfo=UTC)
I18N = create_i18n("en")

CHILD = textwrap.dedent(
    """
    import asyncio, sys
    from datetime import datetime, timezone
    from aiogram.client.session.base import BaseSession
    import keyboards.alerts as alert_kb
    from bot.factory import create_bot, create_gateway, create_i18n
    from services.alerts import AlertPolicy, scan_low_balance
    from bot.config import Settings
    from services.outbox import OutboxSender

    NOW = datetime(2027, 3, 10, 12, 0, tzinfo=timezone.utc)

    class Hanging(BaseSession):
        async def make_request(self, bot, method, timeout=None):
            print("CALLING", method.__api_method__, flush=True)
            await asyncio.sleep(3600)

        async def stream_content(self, *args, **kwargs):
            yield b""

        async def close(self):
            pass

    async def main(url, stage):
        settings = Settings(
            bot_token="1000001:TEST-token-abcdefghijklmnopqrstuvwxyz",
            database_url=url,
            telegram_api_url="http://127.0.0.1:1",
            _env_file=None,
        )
        gateway = create_gateway(settings)
        report = await scan_low_balance(
            gateway, create_i18n("en"), AlertPolicy(), NOW, keyboards=alert_kb
        )
        print("WRITTEN", report.alerts, flush=True)
        if stage == "written":
            await asyncio.sleep(3600)
        bot = create_bot(settings, session=Hanging())
        sender = OutboxSender(gateway, bot, clock=lambda: NOW.timestamp(), owner="child")
        await sender.drain()

    asyncio.run(main(sys.argv[1], sys.argv[2]))
    """
)


async def low_balance_account(gateway: EmbeddedGateway, telegram_id: int) -> int:
    async with gateway.transaction() as billing:
        account, _ = await billing.get_or_create_account(telegram_id, telegram_id)
        await billing.credit(account.id, 100, kind="topup")
        await billing.session.execute(
            update(m.Account)
            .where(m.Account.id == account.id)
            .values(low_balance_threshold_minor=1000)
        )
        return account.id


async def outbox(gateway: EmbeddedGateway) -> list[m.OutboxMessage]:
    async with gateway.transaction() as billing:
        return list(
            await billing.session.scalars(select(m.OutboxMessage).order_by(m.OutboxMessage.id))
        )


async def run_child_until(url: str, stage: str, marker: str) -> str:
    """Start the child, wait for `marker` on its stdout, then kill -9 it."""
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CHILD,
        url,
        stage,
        cwd=ROOT,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    assert process.stdout is not None
    seen = ""
    try:
        while marker not in seen:
            line = await asyncio.wait_for(process.stdout.readline(), 60)
            if not line:
                assert process.stderr is not None
                error = (await process.stderr.read()).decode()
                raise AssertionError(f"child ended early: {seen}\n{error}")
            seen += line.decode()
    finally:
        process.send_signal(signal.SIGKILL)
        await process.wait()
    assert process.returncode == -signal.SIGKILL
    return seen


def restarted_sender(gateway: EmbeddedGateway, fake: FakeTelegram, at: float) -> OutboxSender:
    bot = create_bot(make_settings("sqlite+aiosqlite://"), session=RecordingSession(fake))
    clock = {"now": at}

    async def sleep(seconds: float) -> None:
        clock["now"] += seconds

    return OutboxSender(gateway, bot, clock=lambda: clock["now"], sleep=sleep, owner="restarted")


async def test_kill_9_inside_the_send_then_restart_delivers_exactly_once(
    gateway: EmbeddedGateway, database_url: str, fake_telegram: FakeTelegram
) -> None:
    await low_balance_account(gateway, 9101)
    seen = await run_child_until(database_url, "send", "CALLING sendMessage")
    assert "WRITTEN 1" in seen
    [row] = await outbox(gateway)
    assert (row.status, row.locked_by) == ("pending", "child")  # claimed by the dead process

    # The scan runs again after the restart: the alert is already recorded, nothing new.
    again = await scan_low_balance(gateway, I18N, AlertPolicy(), NOW, keyboards=alert_kb)
    assert again.alerts == 0
    # While the dead sender's claim lasts nobody sends it; after the lease, exactly once.
    sender = restarted_sender(gateway, fake_telegram, NOW.timestamp())
    assert (await sender.drain()).sent == 0
    later = restarted_sender(gateway, fake_telegram, (NOW + timedelta(seconds=61)).timestamp())
    assert (await later.drain()).sent == 1
    assert (await later.drain()).sent == 0
    sent = fake_telegram.sent(9101)
    assert len(sent) == 1 and sent[0].text.startswith("⚠️ <b>Low balance</b>")
    assert [r.status for r in await outbox(gateway)] == ["sent"]


async def test_kill_9_after_the_outbox_write_before_the_send(
    sqlite_gateway: EmbeddedGateway, sqlite_url: str, fake_telegram: FakeTelegram
) -> None:
    gateway = sqlite_gateway
    await low_balance_account(gateway, 9111)
    seen = await run_child_until(sqlite_url, "written", "WRITTEN")
    assert "WRITTEN 1" in seen
    assert (
        await scan_low_balance(gateway, I18N, AlertPolicy(), NOW, keyboards=alert_kb)
    ).alerts == 0
    sender = restarted_sender(gateway, fake_telegram, NOW.timestamp())
    assert (await sender.drain()).sent == 1
    assert (await sender.drain()).sent == 0
    assert len(fake_telegram.sent(9111)) == 1


class BlockingSession(BaseSession):
    """Enters the API call and never returns (until cancelled)."""

    def __init__(self) -> None:
        super().__init__()
        self.entered = asyncio.Event()

    async def make_request(self, bot: Bot, method: Any, timeout: int | None = None) -> Any:
        self.entered.set()
        await asyncio.Event().wait()

    async def stream_content(self, *args: Any, **kwargs: Any) -> Any:  # pragma: no cover
        yield b""

    async def close(self) -> None:
        return None


async def test_cancelled_sender_task_then_restart_delivers_exactly_once(
    gateway: EmbeddedGateway, fake_telegram: FakeTelegram
) -> None:
    await low_balance_account(gateway, 9121)
    await scan_low_balance(gateway, I18N, AlertPolicy(), NOW, keyboards=alert_kb)
    session = BlockingSession()
    bot = create_bot(make_settings("sqlite+aiosqlite://"), session=session)
    crashed = OutboxSender(gateway, bot, clock=lambda: NOW.timestamp(), owner="crashed")
    task = asyncio.create_task(crashed.drain())
    await asyncio.wait_for(session.entered.wait(), 10)
    task.cancel()
    try:
        await task
    except asyncio.CancelledError:
        pass
    [row] = await outbox(gateway)
    assert (row.status, row.locked_by) == ("pending", "crashed")

    restarted = restarted_sender(gateway, fake_telegram, (NOW + timedelta(minutes=2)).timestamp())
    assert (await restarted.drain()).sent == 1
    assert (await restarted.drain()).sent == 0
    assert len(fake_telegram.sent(9121)) == 1
