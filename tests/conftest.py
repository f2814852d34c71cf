"""Shared fixtures: databases (SQLite file and the local PostgreSQL, both migrated with
Alembic), the billing gateway, and the in-process bot driver."""

from __future__ import annotations

import asyncio
import os
import shutil
import uuid
from collections.abc import AsyncIterator, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.engine import make_url

from bot.config import Settings
from bot.factory import create_bot, create_dispatcher, create_gateway
from services.embedded.billing import EmbeddedGateway
from services.embedded.db import _upgrade, create_engine
from services.embedded.models import Base
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.smtp import Inbox, smtp_server
from tests.harness.telegram import TOKEN, FakeTelegram

pytest_plugins = ["tests.whmcs_fixtures"]  # the bot in front of WHMCS

POSTGRES_ADMIN_URL = os.environ.get(
    "TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test"
)


def _in_thread(function, *args):  # type: ignore[no-untyped-def]
    """Run blocking setup (Alembic, asyncio.run) off the event loop a fixture may run in."""
    with ThreadPoolExecutor(1) as pool:
        return pool.submit(function, *args).result()


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "bot_token": TOKEN,
        "database_url": database_url,
        "telegram_api_url": "http://127.0.0.1:1",
        "default_language": "en",
        "scheduler_enabled": False,
        "static_rates": "USD=1.08,RUB=100",
        "staff_chat_id": -1001,
        "admin_ids": "9001",
        "_env_file": None,
    }
    values.update(overrides)
    return Settings(**values)  # type: ignore[arg-type]


@pytest.fixture(scope="session")
def sqlite_template(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("db") / "template.sqlite3"
    _in_thread(_upgrade, f"sqlite+aiosqlite:///{path}", "head")
    return path


@pytest.fixture
def sqlite_url(sqlite_template: Path, tmp_path: Path) -> str:
    path = tmp_path / "bot.sqlite3"
    shutil.copy(sqlite_template, path)
    return f"sqlite+aiosqlite:///{path}"


async def _admin_execute(statement: str) -> None:
    import asyncpg

    url = make_url(POSTGRES_ADMIN_URL)
    conn = await asyncpg.connect(
        host=url.host,
        port=url.port or 5432,
        user=url.username,
        password=url.password,
        database=url.database,
    )
    try:
        await conn.execute(statement)
    finally:
        await conn.close()


@pytest.fixture(scope="session")
def postgres_database() -> Iterator[str]:
    """A fresh database per test session (parallel runs never share one), migrated once."""
    name = f"cabinet_test_{uuid.uuid4().hex[:10]}"
    _in_thread(asyncio.run, _admin_execute(f'CREATE DATABASE "{name}"'))
    url = make_url(POSTGRES_ADMIN_URL).set(database=name).render_as_string(hide_password=False)
    try:
        _in_thread(_upgrade, url, "head")
        yield url
    finally:
        _in_thread(asyncio.run, _admin_execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_all(url: str) -> None:
    engine = create_engine(url)
    tables = ", ".join(f'"{t.name}"' for t in Base.metadata.sorted_tables)
    async with engine.begin() as conn:
        await conn.execute(text(f"TRUNCATE {tables} RESTART IDENTITY CASCADE"))
    await engine.dispose()


@pytest.fixture
def postgres_url(postgres_database: str) -> str:
    """The session's PostgreSQL database, emptied for this test."""
    _in_thread(asyncio.run, _truncate_all(postgres_database))
    return postgres_database


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest) -> str:
    """Service tests run twice: on a SQLite file and on the local PostgreSQL."""
    name = "sqlite_url" if request.param == "sqlite" else "postgres_url"
    return request.getfixturevalue(name)


async def _gateway(url: str) -> EmbeddedGateway:
    gateway = create_gateway(make_settings(url))
    await gateway.seed_demo()
    return gateway


@pytest.fixture
async def gateway(database_url: str) -> AsyncIterator[EmbeddedGateway]:
    gw = await _gateway(database_url)
    yield gw
    await gw.close()


@pytest.fixture
async def sqlite_gateway(sqlite_url: str) -> AsyncIterator[EmbeddedGateway]:
    gw = await _gateway(sqlite_url)
    yield gw
    await gw.close()


@pytest.fixture
def fake_telegram() -> Iterator[FakeTelegram]:
    fake = FakeTelegram()
    yield fake
    assert fake.calls_in_transaction == [], "Bot API calls made inside a billing transaction"


@pytest.fixture
async def driver(sqlite_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[BotDriver]:
    """The production dispatcher over a migrated SQLite file and the fake Telegram."""
    async for drv in _driver(sqlite_url, fake_telegram):
        yield drv


@pytest.fixture
async def db_driver(database_url: str, fake_telegram: FakeTelegram) -> AsyncIterator[BotDriver]:
    """The same driver, once on SQLite and once on PostgreSQL."""
    async for drv in _driver(database_url, fake_telegram):
        yield drv


async def _driver(url: str, fake_telegram: FakeTelegram) -> AsyncIterator[BotDriver]:
    settings = make_settings(url)
    gw = await _gateway(url)
    bot = create_bot(settings, session=RecordingSession(fake_telegram))
    dp = create_dispatcher(settings, gw)
    drv = BotDriver(dp, bot, fake_telegram, gw)
    yield drv
    drv.close()
    await gw.close()


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    """An in-process SMTP server: its inbox and port."""
    with smtp_server() as server:
        yield server
