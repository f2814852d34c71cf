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
