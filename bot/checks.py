"""`python -m bot check`: connects to what the bot needs and says what it found. A failure
names the exception's type (and, for the Bot API, Telegram's description), never a URL with
its password or the token."""

from __future__ import annotations

import asyncio
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy import text
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from bot.config import Settings

TIMEOUT = 10.0
Result = tuple[bool, str]


def _reason(exc: BaseException) -> str:
    if isinstance(exc, TimeoutError):
        return f"no answer within {TIMEOUT:g} s"
    return type(exc).__name__


def _exists(path: str) -> bool:
    return Path(path).exists()


async def check_database(settings: Settings) -> Result:
    from bot.runners import migration_heads

    url = make_url(settings.database_url)
    place = f"{url.host}/{url.database}" if url.host else (url.database or "")
    where = f"{url.get_backend_name()} {place}".rstrip()
    file = url.database if url.get_backend_name() == "sqlite" else None
    if file not in (None, "", ":memory:") and not _exists(file or ""):
        return False, f"database: {where} does not exist (python -m bot migrate creates it)"
    engine = create_async_engine(url, hide_parameters=True)
    try:
        async with asyncio.timeout(TIMEOUT), engine.connect() as connection:
            rows = await connection.execute(text("SELECT version_num FROM alembic_version"))
            found = sorted(str(row[0]) for row in rows)
    except Exception as exc:
        return False, f"database: {where}: {_reason(exc)}"
    finally:
        await engine.dispose()
    heads = sorted(migration_heads(settings.database_url))
    if found != heads:
        return False, (
            f"database: {where} reachable, schema at {', '.join(found) or 'none'}, head is "
            f"{', '.join(heads)} (python -m bot migrate)"
        )
    return True, f"database: {where}, schema at head {', '.join(heads)}"


async def check_redis(settings: Settings) -> Result:
    from redis.asyncio import Redis
    from redis.asyncio.retry import Retry
    from redis.backoff import NoBackoff

    assert settings.redis_url
    parts = urlsplit(settings.redis_url)
    where = f"{parts.hostname or 'localhost'}:{parts.port or 6379}"
    client = Redis.from_url(
        settings.redis_url, socket_connect_timeout=5, socket_timeout=5, retry=Retry(NoBackoff(), 0)
    )
    try:
        async with asyncio.timeout(TIMEOUT):
            await client.ping()
            version = (await client.info("server")).get("redis_version", "?")
    except Exception as exc:
        return False, f"redis: {where}: {_reason(exc)}"
    finally:
        await client.aclose()
    return True, f"redis: {where}, version {version}"


async def check_bot_api(settings: Settings) -> Result:
    from aiogram import Bot
    from aiogram.client.session.aiohttp import AiohttpSession
    from aiogram.client.telegram import TelegramAPIServer
    from aiogram.exceptions import TelegramAPIError

    session = AiohttpSession(api=TelegramAPIServer.from_base(settings.telegram_api_url))
    bot = Bot(token=settings.bot_token.get_secret_value(), session=session)
    try:
        async with asyncio.timeout(TIMEOUT):
            me = await bot.get_me()
    except TelegramAPIError as exc:
        return False, f"bot api: {type(exc).__name__}: {exc.message}"
    except Exception as exc:
        return False, f"bot api: {_reason(exc)}"
    finally:
        await session.close()
    return True, f"bot api: @{me.username} (id {me.id})"


async def run_checks(settings: Settings) -> list[Result]:
    checks = [check_database(settings), check_bot_api(settings)]
    if settings.redis_url:
        checks.insert(1, check_redis(settings))
    else:
        checks.insert(1, _skipped("redis: not configured (REDIS_URL unset), dialogs in memory"))
    return list(await asyncio.gather(*checks))


async def _skipped(line: str) -> Result:
    return True, line
