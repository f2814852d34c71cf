"""An aiogram session that sends every API call to the in-memory FakeTelegram."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType

from bot.json_session import prepared_params
from services.billing import in_transaction
from tests.harness.telegram import ConnectionDropped, FakeTelegram


class RecordingSession(BaseSession):
    def __init__(self, fake: FakeTelegram) -> None:
        super().__init__()
        self.fake = fake

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        if in_transaction():  # the rule: commit first, then talk to Telegram
            self.fake.calls_in_transaction.append(method.__api_method__)
            raise AssertionError(f"{method.__api_method__} called inside a billing transaction")
        params, _files = prepared_params(self, bot, method)
        try:
            status, body = await self.fake.handle(method.__api_method__, params)
        except ConnectionDropped:
            raise TelegramNetworkError(
                method=method, message="ServerDisconnectedError: Server disconnected"
            ) from None
        response = self.check_response(
            bot=bot, method=method, status_code=status, content=json.dumps(body)
        )
        return response.result  # type: ignore[return-value]

    async def stream_content(
        self,
        url: str,
        headers: dict[str, Any] | None = None,
        timeout: int = 30,
        chunk_size: int = 65536,
        raise_for_status: bool = True,
    ) -> AsyncGenerator[bytes, None]:
        yield b""

    async def close(self) -> None:
        return None
