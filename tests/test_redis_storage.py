"""With REDIS_URL set, dialog state lives in Redis: two bot instances see the same dialog."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiogram.fsm.storage.redis import RedisStorage

from bot.factory import create_bot, create_dispatcher, create_storage
from services.embedded.billing import EmbeddedGateway
from tests.conftest import make_settings
from tests.harness.driver import BotDriver
from tests.harness.session import RecordingSession
from tests.harness.telegram import FakeTelegram

REDIS_URL = "redis://127.0.0.1:6379/0"


@pytest.fixture
async def two_instances(
    sqlite_url: str, sqlite_gateway: EmbeddedGateway
) -> AsyncIterator[tuple[BotDriver, BotDriver]]:
    settings = make_settings(sqlite_url, redis_url=REDIS_URL)
    fake = FakeTelegram()
    prefix = f"test-{uuid.uuid4().hex[:8]}"
    drivers = []
    for _ in range(2):
        storage = create_storage(settings)
        assert isinstance(storage, RedisStorage)
        storage.key_builder.prefix = prefix  # isolate this test's keys
        bot = create_bot(settings, session=RecordingSession(fake))
        drivers.append(
            BotDriver(
                create_dispatcher(settings, sqlite_gateway, storage=storage),
                bot,
                fake,
                sqlite_gateway,
            )
        )
    yield drivers[0], drivers[1]
    for drv in drivers:
        await drv.dp.storage.close()
        drv.close()


async def test_dialog_state_is_shared_through_redis(
    two_instances: tuple[BotDriver, BotDriver],
) -> None:
    first, second = two_instances
    user = first.user(801)
    await first.send(user, "/start")
    context = first.dp.fsm.get_context(first.bot, chat_id=801, user_id=801)
    await context.set_state("SomeDialog:waiting")
    await context.update_data(step=2)

    other = second.dp.fsm.get_context(second.bot, chat_id=801, user_id=801)
    assert await other.get_state() == "SomeDialog:waiting"
    assert await other.get_data() == {"step": 2}

    calls = await second.send(user, "/cancel")
    assert calls[0].text == "Cancelled. Nothing was changed."
    assert await context.get_state() is None
