"""Configuration errors are one clear line; migrations go up, down and up again."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from alembic import command
from sqlalchemy import create_engine as create_sync_engine
from sqlalchemy import inspect

from bot.config import ConfigError, load_settings
from services.embedded.db import alembic_config
from services.embedded.models import Base

ROOT = Path(__file__).resolve().parent.parent


def _run_bot(env: dict[str, str], tmp_path: Path) -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "TELEGRAM_"))}
    return subprocess.run(
        [sys.executable, "-m", "bot"],
        cwd=tmp_path,
        env={**clean, **env, "PYTHONPATH": str(ROOT)},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_missing_token_prints_one_clear_line(tmp_path: Path) -> None:
    result = _run_bot({}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == "Configuration error: BOT_TOKEN is required"
    assert "Traceback" not in result.stderr


def test_malformed_token_prints_one_clear_line(tmp_path: Path) -> None:
    result = _run_bot({"BOT_TOKEN": "not-a-token"}, tmp_path)
    assert result.returncode == 2
    assert result.stderr.strip() == (
        "Configuration error: BOT_TOKEN does not look like a Telegram bot token "
        "(expected 123456:ABC...)"
    )


def test_settings_parse_lists_and_modes(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BOT_TOKEN", "123456:ABCDEFGHIJKLMNOPQRSTUVWXYZ")
    monkeypatch.setenv("ADMIN_IDS", "1, 2,3")
    monkeypatch.setenv("CURRENCIES", "eur,usd")
    monkeypatch.setenv("REDIS_URL", "")
    settings = load_settings(_env_file=None)
    assert settings.admin_ids == [1, 2, 3]
    assert settings.currencies == ["EUR", "USD"]
    assert settings.redis_url is None
    assert settings.webhook_mode is False
    monkeypatch.setenv("WEBHOOK_URL", "https://bot.example.com")
    monkeypatch.setenv("DEFAULT_LANGUAGE", "de")
    with pytest.raises(ConfigError, match="DEFAULT_LANGUAGE must be one of en, ru"):
        load_settings(_env_file=None)


def test_migrations_stairway_up_down_up(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'stairs.sqlite3'}"
    config = alembic_config(url)
    command.upgrade(config, "head")
    sync_url = url.replace("+aiosqlite", "")
    tables = set(inspect(create_sync_engine(sync_url)).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}
    command.downgrade(config, "base")
    assert set(inspect(create_sync_engine(sync_url)).get_table_names()) == {"alembic_version"}
    command.upgrade(config, "head")
    assert set(inspect(create_sync_engine(sync_url)).get_table_names()) == tables


def test_models_and_migrations_agree(tmp_path: Path) -> None:
    """`make schema` was run after the last model change: autogenerate finds nothing to do."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    url = f"sqlite+aiosqlite:///{tmp_path / 'diff.sqlite3'}"
    command.upgrade(alembic_config(url), "head")
    engine = create_sync_engine(url.replace("+aiosqlite", ""))
    with engine.connect() as conn:
        diff = compare_metadata(MigrationContext.configure(conn), Base.metadata)
    assert diff == []


def test_migrate_command_needs_no_token(tmp_path: Path) -> None:
    database = tmp_path / "only-migrate.sqlite3"
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("BOT_", "TELEGRAM_"))}
    result = subprocess.run(
        [sys.executable, "-m", "bot", "migrate"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env={**clean, "PYTHONPATH": str(ROOT), "DATABASE_URL": f"sqlite+aiosqlite:///{database}"},
        timeout=60,
    )
    assert result.returncode == 0, result.stderr
    tables = set(inspect(create_sync_engine(f"sqlite:///{database}")).get_table_names())
    assert tables == set(Base.metadata.tables) | {"alembic_version"}


def _scratch_postgres_url(name: str) -> str:
    """A new, empty PostgreSQL database next to the test one (the shared one stays at head)."""
    import asyncio

    import asyncpg

    from tests.conftest import POSTGRES_ADMIN_URL

    base = POSTGRES_ADMIN_URL.rsplit("/", 1)[0]

    async def recreate() -> None:
        conn = await asyncpg.connect(base.replace("postgresql+asyncpg", "postgresql") + "/postgres")
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{name}"')
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()

    asyncio.run(recreate())
    return f"{base}/{name}"


def _run_sql(url: str, statements: list[tuple[str, dict[str, object]]]) -> list[list[tuple]]:
    """Run statements in one transaction through the async driver; the rows of each."""
    import asyncio

    from sqlalchemy import text
    from sqlalchemy.ext.asyncio import create_async_engine

    async def run() -> list[list[tuple]]:
        engine = create_async_engine(url)
        try:
            async with engine.begin() as conn:
                results = []
                for sql, params in statements:
                    result = await conn.execute(text(sql), params)
                    results.append([tuple(r) for r in result] if result.returns_rows else [])
                return results
        finally:
            await engine.dispose()

    return asyncio.run(run())


_ACCOUNT = (
    "INSERT INTO accounts (id, login, telegram_name, currency, balance_minor, unreachable,"
    " newsletter, low_balance_alerted, auto_renew_default, pay_without_auth, profile_type,"
    " company_verified, email_confirmed, phone_verified, ip_allowlist, show_last_ip,"
    " created_at) VALUES (1, 'tg1', '', 'EUR', 0, false, false, false, true, false,"
    " 'individual', false, false, false, '', false, :at)"
)
_TICKET = (
    "INSERT INTO tickets (id, account_id, department, subject, status, created_at,"
    " updated_at, staff_chat_id, staff_thread_id, staff_reminded_at) VALUES"
    " (:id, 1, 'tech', 'Slow', 'open', :at, :at, :chat, :thread, :reminded)"
)


@pytest.mark.parametrize("dialect", ["sqlite", "postgresql"])
def test_ticket_places_move_to_the_bot_store_and_back(tmp_path: Path, dialect: str) -> None:
    """0004 carries every ticket's staff-group place and reminder into ticket_places, and its
    downgrade carries them back."""
    from datetime import UTC, datetime

    if dialect == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path / 'places.sqlite3'}"
    else:
        url = _scratch_postgres_url("test_migration_0004")
    config = alembic_config(url)
    command.upgrade(config, "0003")
    at = datetime(2026, 1, 1, tzinfo=UTC)
    reminded = datetime(2026, 1, 2, 10, tzinfo=UTC)
    if dialect == "sqlite":  # stored the way the models' UTCDateTime writes it
        at, reminded = at.replace(tzinfo=None), reminded.replace(tzinfo=None)
    tickets = [(1, -100, 7, reminded), (2, -100, None, None), (3, None, None, None)]
    _run_sql(
        url,
        [(_ACCOUNT, {"at": at})]
        + [
            (_TICKET, {"id": i, "at": at, "chat": chat, "thread": thread, "reminded": when})
            for i, chat, thread, when in tickets
        ],
    )
    command.upgrade(config, "0004")
    [places] = _run_sql(
        url,
        [("SELECT ticket_id, chat_id, thread_id, reminded_at FROM ticket_places ORDER BY 1", {})],
    )
    assert [p[:3] for p in places] == [(1, -100, 7), (2, -100, None)]
    assert str(places[0][3]).startswith("2026-01-02 10:00:00")  # str on SQLite
    command.downgrade(config, "0003")
    [back] = _run_sql(
        url, [("SELECT id, staff_chat_id, staff_thread_id FROM tickets ORDER BY id", {})]
    )
    assert back == [(1, -100, 7), (2, -100, None), (3, None, None)]


def test_every_setting_is_documented_in_readme_and_env_example() -> None:
    """A newcomer finds every setting in README's table and in .env.example."""
    from bot.config import Settings

    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    example = (ROOT / ".env.example").read_text(encoding="utf-8")
    names = [name.upper() for name in Settings.model_fields]
    assert [n for n in names if f"`{n}`" not in readme] == [], "missing in README.md"
    assert [n for n in names if f"{n}=" not in example] == [], "missing in .env.example"
