"""Operations in-process (issue 16): what /readyz finds, JSON log lines with their context and
redaction, and the metrics that the e2e run does not move (jobs failing, 403s, billing calls,
credited payments). Over real HTTP: tests/e2e/test_ops_e2e.py."""

from __future__ import annotations

import asyncio
import io
import json
import logging
from collections.abc import AsyncIterator, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from aiogram.exceptions import TelegramForbiddenError
from aiogram.methods import SendMessage
from sqlalchemy.ext.asyncio import create_async_engine

from bot import metrics
from bot.health import OpsState, use_redis
from bot.logging_setup import LOG_CONTEXT, LogContext, configure_logging
from bot.runners import migration_heads
from services import observers
from services.embedded.db import migrate
from services.whmcs import WhmcsClient, WhmcsConfig, WhmcsError
from tests.conftest import make_settings
from tests.harness.server import free_port
from tests.harness.telegram import TOKEN
from tests.harness.whmcs import IDENTIFIER, SECRET, Fault, WhmcsStandIn


def value(name: str, **labels: str) -> float:
    return metrics.REGISTRY.get_sample_value(name, labels) or 0.0


@pytest.fixture
async def state(sqlite_url: str) -> AsyncIterator[OpsState]:
    engine = create_async_engine(sqlite_url)
    yield OpsState(engine=engine, heads=migration_heads(sqlite_url))
    await engine.dispose()


async def test_ready_when_the_schema_is_at_head(state: OpsState) -> None:
    assert await state.problems() == {}
    use_redis(state, "redis://127.0.0.1:6379/0")
    try:
        assert await state.problems() == {}
        state.shutting_down = True
        assert await state.problems() == {"shutdown": "shutting down"}
    finally:
        await state.close()


async def test_not_ready_below_the_migrations_head(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'old.sqlite3'}"
    await migrate(url, "0005")
    engine = create_async_engine(url)
    try:
        problems = await OpsState(engine=engine, heads=migration_heads(url)).problems()
    finally:
        await engine.dispose()
    assert list(problems) == ["migrations"]
    assert problems["migrations"].startswith("schema at 0005, head is ")


async def test_not_ready_without_redis(state: OpsState) -> None:
    use_redis(state, f"redis://127.0.0.1:{free_port()}/0")  # a closed port
    try:
        assert await state.problems() == {"redis": "unreachable (ConnectionError)"}
    finally:
        await state.close()


@pytest.fixture
def json_log() -> Iterator[io.StringIO]:
    stream = io.StringIO()
    configure_logging(make_settings("sqlite://", log_format="json", bot_token=TOKEN), stream)
    yield stream
    configure_logging(make_settings("sqlite://"), io.StringIO())


def test_json_lines_carry_the_context_and_no_personal_data(json_log: io.StringIO) -> None:
    token = LOG_CONTEXT.set(LogContext(update_id=5, user_id=42, chat_id=-100, handler="x.y"))
    try:
        logging.getLogger("handlers.test").warning(
            "mail %s, phone %s, token %s", "alice@example.com", "+7 912 345-67-89", TOKEN
        )
    finally:
        LOG_CONTEXT.reset(token)
    logging.getLogger("bot.test").info("no context")
    first, second = (json.loads(line) for line in json_log.getvalue().splitlines())
    assert {k: first[k] for k in ("level", "logger", "update_id", "user_id", "chat_id")} == {
        "level": "WARNING",
        "logger": "handlers.test",
        "update_id": 5,
        "user_id": 42,
        "chat_id": -100,
    }
    assert first["handler"] == "x.y" and first["timestamp"].endswith("+00:00")
    assert "alice@example.com" not in first["message"] and "345-67-89" not in first["message"]
    assert TOKEN not in json_log.getvalue()
    assert second["message"] == "no context" and "update_id" not in second


async def test_a_job_is_counted_by_outcome_and_logs_its_name(json_log: io.StringIO) -> None:
    async def job(fail: bool) -> None:
        logging.getLogger("bot.test").info("working")
        if fail:
            raise RuntimeError("boom")

    counted = metrics.instrument_job("test_job", job)
    before = value("bot_job_runs_total", job="test_job", outcome="error")
    await counted(False)
    with pytest.raises(RuntimeError):
        await counted(True)
    assert value("bot_job_runs_total", job="test_job", outcome="ok") >= 1
    assert value("bot_job_runs_total", job="test_job", outcome="error") == before + 1
    assert value("bot_job_duration_seconds_count", job="test_job") >= 2
    assert [json.loads(line)["job"] for line in json_log.getvalue().splitlines()] == [
        "test_job",
        "test_job",
    ]
    assert LOG_CONTEXT.get() is None


async def test_a_403_is_counted() -> None:
    method = SendMessage(chat_id=1, text="hi")

    async def refused(bot: Any, method: Any) -> Any:
        raise TelegramForbiddenError(method, "Forbidden: bot was blocked by the user")

    before = value("bot_telegram_requests_total", method="sendMessage", result="403")
    with pytest.raises(TelegramForbiddenError):
        await metrics.TelegramMetrics()(refused, None, method)  # type: ignore[arg-type]
    assert value("bot_telegram_requests_total", method="sendMessage", result="403") == before + 1


@pytest.fixture
def metrics_observer() -> Iterator[None]:
    metrics.install("polling", "whmcs")
    yield
    observers.install(None)


async def test_billing_calls_are_timed_and_failures_counted(metrics_observer: None) -> None:
    labels = {"billing": "whmcs", "action": "GetClientsDetails"}
    async with WhmcsStandIn() as whmcs:
        alice = whmcs.add_client("Alice", "Smith", "alice@example.com", credit=Decimal("1"))
        config = WhmcsConfig(url=whmcs.url, identifier=IDENTIFIER, secret=SECRET)
        async with WhmcsClient(config) as api:
            calls = value("bot_billing_call_duration_seconds_count", **labels)
            errors = value("bot_billing_call_errors_total", **labels, outcome="error")
            await api.get_client(alice.id)
            whmcs.fail_next(Fault.ERROR, "GetClientsDetails")
            with pytest.raises(WhmcsError):
                await api.get_client(alice.id)
    assert value("bot_billing_call_duration_seconds_count", **labels) == calls + 2
    assert value("bot_billing_call_errors_total", **labels, outcome="error") == errors + 1


def test_credited_payments_are_counted(metrics_observer: None) -> None:
    before = value("bot_payments_credited_total", provider="stars")
    observers.observer().payment_credited("stars")
    assert value("bot_payments_credited_total", provider="stars") == before + 1
    assert value("bot_info", mode="polling", billing="whmcs") == 1


async def test_the_default_observer_counts_nothing() -> None:
    observers.install(None)
    before = value("bot_payments_credited_total", provider="stars")
    observers.observer().payment_credited("stars")
    await asyncio.sleep(0)
    assert value("bot_payments_credited_total", provider="stars") == before


async def test_the_outbox_gauges_count_pending_rows_and_the_oldest_age(
    state: OpsState, sqlite_url: str
) -> None:
    from datetime import UTC, datetime, timedelta

    from sqlalchemy.ext.asyncio import AsyncSession

    from services.embedded.models import OutboxMessage

    assert await state.outbox() == (0, 0.0)
    now = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)
    rows = [("pending", 90), ("pending", 30), ("sent", 600), ("failed", 900)]
    async with AsyncSession(state.engine) as session, session.begin():
        for status, age in rows:
            created = now - timedelta(seconds=age)
            session.add(
                OutboxMessage(
                    chat_id=1, method="sendMessage", payload={}, status=status, created_at=created
                )
            )
    state.clock = lambda: now
    assert await state.outbox() == (2, 90.0)
