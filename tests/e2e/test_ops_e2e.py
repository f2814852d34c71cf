"""Operations over real HTTP against the real process, polling and webhook (issue 16):
/healthz, /readyz (and its 503s: a database gone, a shutdown), /metrics moving with updates
and an alert, one JSON log line per update without personal data, `python -m bot check`."""

from __future__ import annotations

import asyncio
import contextlib
import json
import signal
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy.engine import make_url

from bot.factory import create_gateway
from services.embedded import models as m
from tests.conftest import make_settings
from tests.e2e.conftest import ROOT, LiveBot, _child_env, _env, _start, _stop
from tests.harness.server import TelegramServer, free_port
from tests.harness.telegram import TOKEN, Call

SECRET = "ops-Secret_16"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


@dataclass
class OpsBot:
    bot: LiveBot
    base: str  # where /healthz, /readyz and /metrics are served
    env: dict[str, str]
    mode: str


async def _start_bot(
    mode: str, tmp_path: Path, server: TelegramServer, **extra: str
) -> tuple[OpsBot, Path]:
    port = free_port()
    if mode == "webhook":
        extra = {"WEBHOOK_URL": f"http://127.0.0.1:{port}", "WEBHOOK_SECRET": SECRET, **extra}
    env = _env(tmp_path, server, WEB_HOST="127.0.0.1", WEB_PORT=str(port), **extra)
    ready = "setWebhook" if mode == "webhook" else "getUpdates"
    process, log = await _start(tmp_path, env, server.fake, ready)
    ops_port = env.get("METRICS_PORT") or env["WEB_PORT"]
    bot = LiveBot(server.fake, process, log, webhook_secret=SECRET)
    return OpsBot(bot, f"http://127.0.0.1:{ops_port}", env, mode), log


@pytest.fixture(params=["polling", "webhook"])
async def ops_bot(
    request: pytest.FixtureRequest, tmp_path: Path, telegram_server: TelegramServer
) -> AsyncIterator[OpsBot]:
    """JSON logs, alerts checked every second and sent at once."""
    ops, log = await _start_bot(
        request.param,
        tmp_path,
        telegram_server,
        LOG_FORMAT="json",
        ALERT_INTERVAL_SECONDS="1",
        SENDER_INTERVAL_SECONDS="0.3",
        QUIET_HOURS="",
    )
    yield ops
    await _stop(ops.bot.process, log)


async def _get(url: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as http, http.get(url) as response:
        return response.status, await response.text()


async def _json(url: str) -> tuple[int, Any]:
    status, body = await _get(url)
    return status, json.loads(body)


async def _samples(base: str) -> Samples:
    status, body = await _get(f"{base}/metrics")
    assert status == 200, body
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
    }


def _total(samples: Samples, name: str, **labels: str) -> float:
    wanted = set(labels.items())
    return sum(v for (n, found), v in samples.items() if n == name and wanted <= found)


def _labels(samples: Samples, name: str, label: str) -> set[str]:
    return {dict(found)[label] for (n, found) in samples if n == name and label in dict(found)}


async def _wait_for_status(url: str, status: int, timeout: float = 10.0) -> Any:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        found, body = await _json(url)
        if found == status or loop.time() > deadline:
            assert found == status, body
            return body
        await asyncio.sleep(0.1)


async def _low_balance(database_url: str, telegram_id: int) -> None:
    """The account's low-balance threshold above its €0.00: the alerts job writes an alert."""
    gateway = create_gateway(make_settings(database_url))
    try:
        async with gateway.transaction() as billing:
            account = await billing.find_account_by_telegram(telegram_id)
            assert account is not None
            row = await billing.session.get(m.Account, account.id)
            assert row is not None
            row.low_balance_threshold_minor = 1000
    finally:
        await gateway.close()


def _sent_to(chat_id: int, contains: str) -> Any:
    def match(call: Call) -> bool:
        return (
            call.method == "sendMessage"
            and call.get("chat_id") == chat_id
            and (contains in (call.text or ""))
        )

    return match


async def test_health_metrics_and_json_logs(ops_bot: OpsBot) -> None:
    bot, base = ops_bot.bot, ops_bot.base
    assert await _json(f"{base}/healthz") == (200, {"status": "ok"})
    assert await _json(f"{base}/readyz") == (200, {"status": "ready"})
    before = await _samples(base)
    assert _total(before, "bot_info", mode=ops_bot.mode, billing="embedded") == 1

    user = bot.user(761)
    bot.fake.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
    start_update = bot.fake.user_message(user, "/start")
    start = len(bot.fake.calls)
    await bot.deliver(start_update)
    menu = await bot.reply(_sent_to(761, "Personal cabinet"), start)  # after the 429's retry
    help_update = bot.fake.press(user, menu, menu.callback_data("Help"))
    start = len(bot.fake.calls)
    await bot.deliver(help_update)
    await bot.reply(lambda c: c.method == "answerCallbackQuery", start)
    await _low_balance(ops_bot.env["DATABASE_URL"], 761)
    await bot.reply(_sent_to(761, "Low balance"), start, timeout=30)
    await asyncio.sleep(0.5)  # the sender marks the row sent after Telegram's answer

    after = await _samples(base)

    def moved(name: str, **labels: str) -> float:
        return _total(after, name, **labels) - _total(before, name, **labels)

    assert moved("bot_updates_total", type="message") == 1
    assert moved("bot_updates_total", type="callback_query") == 1
    handlers = _labels(after, "bot_updates_total", "handler")
    assert any(name.startswith("menu.") for name in handlers), handlers
    assert moved("bot_update_duration_seconds_count") == 2
    assert moved("bot_update_errors_total") == 0
    assert moved("bot_messages_sent_total", method="sendMessage") >= 2  # the menu, the alert
    assert moved("bot_telegram_requests_total", method="sendMessage", result="429") == 1
    assert moved("bot_telegram_requests_total", method="sendMessage", result="ok") >= 2
    assert moved("bot_job_runs_total", job="alerts", outcome="ok") >= 1
    assert moved("bot_job_runs_total", job="outbox", outcome="ok") >= 1
    assert moved("bot_job_duration_seconds_count", job="outbox") >= 1
    assert _total(after, "bot_outbox_pending") == 0
    assert _total(after, "bot_outbox_oldest_pending_age_seconds") == 0
    exposition = (await _get(f"{base}/metrics"))[1]
    for name in ("bot_payments_credited", "bot_billing_call_errors"):  # declared, none yet
        assert (
            f"# TYPE {name}_total counter" in exposition or f"# TYPE {name} counter" in exposition
        )

    lines = [json.loads(line) for line in bot.log.read_text().splitlines() if line.strip()]
    for update in (start_update, help_update):
        handled = [
            line
            for line in lines
            if line.get("update_id") == update["update_id"] and "is handled" in line["message"]
        ]
        assert len(handled) == 1, lines
        assert handled[0]["user_id"] == 761 and handled[0]["chat_id"] == 761
        assert handled[0]["handler"].startswith("menu."), handled
        assert {"timestamp", "level", "logger"} <= handled[0].keys()
    text = bot.log.read_text()
    assert "Alice" not in text  # the user's first name
    assert TOKEN not in text and TOKEN.split(":")[1] not in text


async def test_readyz_is_503_while_shutting_down(ops_bot: OpsBot) -> None:
    """SIGTERM with an update still being handled: /readyz says so while the process waits."""
    bot, base = ops_bot.bot, ops_bot.base
    held = bot.fake.hold("sendMessage", match=lambda p: p.get("chat_id") == 762)
    await bot.send(bot.user(762), "/start")
    await held.arrived()
    bot.process.send_signal(signal.SIGTERM)
    body = await _wait_for_status(f"{base}/readyz", 503)
    assert body == {"status": "not ready", "problems": {"shutdown": "shutting down"}}
    assert (await _json(f"{base}/healthz"))[0] == 200  # alive while it finishes
    held.release(performed=True)


class Relay:
    """A TCP relay to PostgreSQL that the test can close: the database becomes unreachable
    (connections cut, the port closed) and comes back on the same port."""

    def __init__(self, target: tuple[str, int]) -> None:
        self.target, self.port = target, free_port()
        self._server: asyncio.Server | None = None
        self._writers: list[asyncio.StreamWriter] = []
        self._pipes: set[asyncio.Task[None]] = set()

    async def open(self) -> None:
        self._server = await asyncio.start_server(self._pipe, "127.0.0.1", self.port)

    async def close(self) -> None:
        """Refuse new connections and cut the open ones (each socket closed before return)."""
        if self._server is not None:
            self._server.close()
            await self._server.wait_closed()
            self._server = None
        for writer in self._writers:
            writer.close()
        self._writers.clear()
        await asyncio.gather(*self._pipes, return_exceptions=True)

    async def _pipe(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        self._pipes.add(task)
        task.add_done_callback(self._pipes.discard)
        self._writers.append(writer)
        try:
            up_reader, up_writer = await asyncio.open_connection(*self.target)
        except OSError:
            writer.close()
            return
        self._writers.append(up_writer)

        async def copy(source: asyncio.StreamReader, sink: asyncio.StreamWriter) -> None:
            try:
                while data := await source.read(65536):
                    sink.write(data)
                    await sink.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                sink.close()
                with contextlib.suppress(ConnectionError, OSError):
                    await sink.wait_closed()

        await asyncio.gather(copy(reader, up_writer), copy(up_reader, writer))


@pytest.mark.parametrize("mode", ["polling", "webhook"])
async def test_readyz_is_503_while_postgresql_is_unreachable(
    mode: str, tmp_path: Path, telegram_server: TelegramServer, postgres_url: str
) -> None:
    url = make_url(postgres_url)
    relay = Relay((url.host or "127.0.0.1", url.port or 5432))
    await relay.open()
    through = url.set(host="127.0.0.1", port=relay.port).render_as_string(hide_password=False)
    ops, log = await _start_bot(
        mode, tmp_path, telegram_server, DATABASE_URL=through, SCHEDULER_ENABLED="false"
    )
    try:
        assert await _json(f"{ops.base}/readyz") == (200, {"status": "ready"})
        await relay.close()
        body = await _wait_for_status(f"{ops.base}/readyz", 503)
        assert body["status"] == "not ready"
        assert list(body["problems"]) == ["database"], body
        assert body["problems"]["database"].startswith("unreachable ("), body
        assert str(relay.port) not in json.dumps(body)  # a type, never the driver's text
        assert (await _json(f"{ops.base}/healthz"))[0] == 200
        scraped = await _samples(ops.base)  # still answers, the outbox query counted failed
        assert _total(scraped, "bot_metrics_scrape_errors_total") >= 1

        await relay.open()
        await _wait_for_status(f"{ops.base}/readyz", 200)
    finally:
        await _stop(ops.bot.process, log)
        await relay.close()


async def test_metrics_on_their_own_port(tmp_path: Path, telegram_server: TelegramServer) -> None:
    """METRICS_PORT set: the endpoints move there; the webhook port no longer serves them."""
    ops, log = await _start_bot("webhook", tmp_path, telegram_server, METRICS_PORT=str(free_port()))
    try:
        assert await _json(f"{ops.base}/healthz") == (200, {"status": "ok"})
        webhook_port = ops.env["WEB_PORT"]
        assert (await _get(f"http://127.0.0.1:{webhook_port}/metrics"))[0] == 404
        assert await _run_bot("healthcheck", env=ops.env) == (0, "")
    finally:
        await _stop(ops.bot.process, log)


async def _run_bot(*args: str, env: dict[str, str], cwd: Path | None = None) -> tuple[int, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        cwd=cwd or ROOT,
        env=_child_env(env),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.STDOUT,
    )
    out, _ = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode is not None
    return process.returncode, out.decode()


async def test_check_finds_every_service(
    tmp_path: Path, telegram_server: TelegramServer, postgres_url: str
) -> None:
    env = _env(
        tmp_path, telegram_server, DATABASE_URL=postgres_url, REDIS_URL="redis://127.0.0.1:6379/0"
    )
    code, out = await _run_bot("check", env=env, cwd=tmp_path)
    assert code == 0, out
    lines = out.splitlines()
    assert lines[0] == "ok   configuration: polling mode, billing embedded"
    assert any(
        line.startswith("ok   database: postgresql 127.0.0.1/") and "at head" in line
        for line in lines
    ), out
    assert any(line.startswith("ok   redis: 127.0.0.1:6379, version ") for line in lines), out
    assert "ok   bot api: @cabinet_test_bot (id 1000001)" in lines, out
    assert [c.method for c in telegram_server.fake.calls] == ["getMe"]


async def test_check_fails_on_a_database_and_redis_it_cannot_reach(
    tmp_path: Path, telegram_server: TelegramServer
) -> None:
    closed = f"postgresql+asyncpg://cabinet:hunter2@127.0.0.1:{free_port()}/cabinet"
    redis_port = free_port()
    redis = f"redis://:hunter2@127.0.0.1:{redis_port}/0"
    env = _env(tmp_path, telegram_server, DATABASE_URL=closed, REDIS_URL=redis)
    code, out = await _run_bot("check", env=env, cwd=tmp_path)
    assert code == 1, out
    lines = out.splitlines()
    assert any(line.startswith("FAIL database: postgresql 127.0.0.1/cabinet: ") for line in lines)
    assert f"FAIL redis: 127.0.0.1:{redis_port}: ConnectionError" in lines, out
    assert "ok   bot api: @cabinet_test_bot" in out  # the others are still checked
    assert "hunter2" not in out and TOKEN not in out


async def test_check_fails_on_a_bad_configuration_and_a_refused_token(
    tmp_path: Path, telegram_server: TelegramServer
) -> None:
    env = _env(tmp_path, telegram_server, LOG_FORMAT="xml")
    code, out = await _run_bot("check", env=env, cwd=tmp_path)
    assert (code, out.splitlines()[0][:25]) == (1, "FAIL configuration: Confi"), out
    assert "LOG_FORMAT" in out

    env = _env(tmp_path, telegram_server, BOT_TOKEN="42:refused-token-abcdefghijklmnopqrstu")
    code, out = await _run_bot("check", env=env, cwd=tmp_path)
    assert code == 1, out
    assert "FAIL bot api: " in out and "refused-token" not in out
