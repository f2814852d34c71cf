"""End-to-end fixtures: the real `python -m bot` process against the Bot API stand-in."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import aiohttp
import pytest

from tests.harness.server import TelegramServer, free_port
from tests.harness.telegram import Call, Chat, FakeTelegram, User
from tests.harness.whmcs import IDENTIFIER, SECRET, WhmcsStandIn

ROOT = Path(__file__).resolve().parents[2]


class LiveBot:
    """A running bot process and the Telegram stand-in it talks to."""

    def __init__(
        self,
        fake: FakeTelegram,
        process: asyncio.subprocess.Process,
        log: Path,
        webhook_secret: str | None = None,
    ) -> None:
        self.fake, self.process, self.log = fake, process, log
        self.webhook_secret = webhook_secret

    async def deliver(self, update: dict[str, Any]) -> None:
        """Hand an update to the bot the way Telegram would in the current mode."""
        if not self.fake.webhook.get("url"):
            self.fake.enqueue_update(update)
            return
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret or ""}
        async with (
            aiohttp.ClientSession() as http,
            http.post(self.fake.webhook["url"], json=update, headers=headers) as response,
        ):
            assert response.status == 200, await response.text()

    async def send(self, user: User, text: str, **kwargs: Any) -> int:
        """Send as `user`; returns the call index to wait from."""
        start = len(self.fake.calls)
        await self.deliver(self.fake.user_message(user, text, **kwargs))
        return start

    async def press(self, user: User, message: Call, button_text: str) -> int:
        start = len(self.fake.calls)
        await self.deliver(self.fake.press(user, message, message.callback_data(button_text)))
        return start

    async def reply(self, predicate: Any, start: int, timeout: float = 15.0) -> Call:
        try:
            return await self.fake.wait_for(predicate, timeout=timeout, start=start)
        except TimeoutError:
            raise AssertionError(
                f"no matching call; bot log:\n{self.log.read_text()[-3000:]}"
            ) from None

    def user(self, user_id: int, language_code: str | None = "en") -> User:
        user = User(id=user_id, language_code=language_code, first_name="Alice")
        self.fake.add_chat(Chat(id=user_id, first_name="Alice"))
        return user


def _child_env(env: dict[str, str]) -> dict[str, str]:
    base_env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("BOT_", "TELEGRAM_", "WEBHOOK_", "DATABASE_", "REDIS_"))
    }
    return {**base_env, "PYTHONPATH": str(ROOT), **env}


async def _start(
    tmp_path: Path,
    env: dict[str, str],
    fake: FakeTelegram,
    ready_method: str,
    log_name: str = "bot.log",
) -> tuple[asyncio.subprocess.Process, Path]:
    log = tmp_path / log_name  # a restarted process gets its own log
    first_call = len(fake.calls)  # another instance may already have made the same call
    with log.open("wb") as out:  # the child writes to its own copy of the descriptor
        process = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "bot",
            cwd=tmp_path,
            env=_child_env(env),
            stdout=out,
            stderr=asyncio.subprocess.STDOUT,
        )
    try:
        await fake.wait_for(lambda c: c.method == ready_method, timeout=60, start=first_call)
    except TimeoutError:
        process.kill()
        raise AssertionError(f"the bot did not start:\n{log.read_text()}") from None
    return process, log


async def _stop(process: asyncio.subprocess.Process, log: Path) -> None:
    if process.returncode is None:
        process.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(process.wait(), 20)
        except TimeoutError:
            process.kill()
            await process.wait()
            raise AssertionError(f"no graceful shutdown:\n{log.read_text()[-3000:]}") from None
    assert process.returncode == 0, log.read_text()[-3000:]
    assert "Traceback" not in log.read_text(), log.read_text()[-3000:]
    # bot.middlewares.TransactionGuard: no Bot API call while a transaction was open
    assert "inside a billing transaction" not in log.read_text(), log.read_text()[-3000:]


def _env(tmp_path: Path, server: TelegramServer, **extra: str) -> dict[str, str]:
    from tests.harness.telegram import TOKEN

    return {
        "BOT_TOKEN": TOKEN,
        "TELEGRAM_API_URL": server.url,
        "DATABASE_URL": f"sqlite+aiosqlite:///{tmp_path / 'bot.sqlite3'}",
        "DEFAULT_LANGUAGE": "en",
        "STAFF_CHAT_ID": "-100500",
        "ADMIN_IDS": "9001",
        "STATIC_RATES": "USD=1.08,RUB=100",
        "LOG_LEVEL": "INFO",
        # The scripted users type and press far faster than people; the per-user throttle is
        # tested in-process (tests/test_throttle.py).
        "THROTTLE_RATE": "100",
        # The ops endpoints (/healthz, /readyz, /metrics) are served in polling mode too: each
        # process on a free loopback port of its own.
        "WEB_HOST": "127.0.0.1",
        "WEB_PORT": str(free_port()),
        **extra,
    }


def webhook_env(tmp_path: Path, server: TelegramServer, secret: str) -> dict[str, str]:
    """Webhook mode: the bot's aiohttp server on a free loopback port, the secret checked."""
    port = free_port()
    return _env(
        tmp_path,
        server,
        WEBHOOK_URL=f"http://127.0.0.1:{port}",
        WEBHOOK_SECRET=secret,
        WEB_HOST="127.0.0.1",
        WEB_PORT=str(port),
    )


@pytest.fixture
async def telegram_server() -> AsyncIterator[TelegramServer]:
    server = TelegramServer(FakeTelegram())
    await server.start()
    yield server
    server.fake.release_holds()  # a held call would keep the server's shutdown waiting
    await server.stop()


@pytest.fixture
async def live_bot(tmp_path: Path, telegram_server: TelegramServer) -> AsyncIterator[LiveBot]:
    """The bot in long-polling mode."""
    fake = telegram_server.fake
    process, log = await _start(tmp_path, _env(tmp_path, telegram_server), fake, "getUpdates")
    yield LiveBot(fake, process, log)
    await _stop(process, log)


@pytest.fixture
async def live_webhook_bot(
    tmp_path: Path, telegram_server: TelegramServer
) -> AsyncIterator[LiveBot]:
    """The bot in webhook mode: its aiohttp server on a loopback port, secret token checked."""
    fake = telegram_server.fake
    env = webhook_env(tmp_path, telegram_server, "s3cret-Token_1")
    process, log = await _start(tmp_path, env, fake, "setWebhook")
    yield LiveBot(fake, process, log, webhook_secret="s3cret-Token_1")
    await _stop(process, log)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if "tests/e2e/" in str(item.fspath).replace(os.sep, "/"):
            item.add_marker(pytest.mark.e2e)


@pytest.fixture
async def live_whmcs_bot(
    tmp_path: Path, telegram_server: TelegramServer, whmcs: WhmcsStandIn
) -> AsyncIterator[LiveBot]:
    """The bot in long-polling mode in front of the WHMCS stand-in (BILLING=whmcs)."""
    from tests.whmcs_fixtures import DEPARTMENTS, STAFF_ADMINS

    fake = telegram_server.fake
    env = _env(
        tmp_path,
        telegram_server,
        BILLING="whmcs",
        WHMCS_URL=whmcs.url,
        WHMCS_IDENTIFIER=IDENTIFIER,
        WHMCS_SECRET=SECRET,
        WHMCS_DEPARTMENTS=DEPARTMENTS,
        WHMCS_ADMIN_USERNAMES=STAFF_ADMINS,
        WHMCS_TIMEOUT_SECONDS="3",
        SEED_DEMO_CATALOGUE="false",
    )
    process, log = await _start(tmp_path, env, fake, "getUpdates")
    yield LiveBot(fake, process, log)
    await _stop(process, log)
