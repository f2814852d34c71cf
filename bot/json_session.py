"""Bot API requests as JSON bodies instead of multipart forms.

aiogram's `AiohttpSession` posts every call as `multipart/form-data`, building an aiohttp
`FormData` with one part (and its headers) per field: about a tenth of the event loop's CPU in
this bot, whose calls carry keyboards and long texts. The Bot API takes `application/json`
for every call that uploads no file, so `JsonAiohttpSession` sends those as one JSON document;
a call with a file (none today) still goes as aiogram builds it.
"""

from __future__ import annotations

from typing import Any, cast

from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.session.base import BaseSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import InputFile
from aiohttp import ClientError, ClientTimeout

JSON_HEADERS = {"Content-Type": "application/json"}


def prepared_params(
    session: BaseSession, bot: Bot, method: TelegramMethod[Any]
) -> tuple[dict[str, Any], dict[str, InputFile]]:
    """The call's parameters as the Bot API takes them (defaults resolved, dates as Unix
    time, nested objects as plain values; unset ones left out), and the files it uploads."""
    files: dict[str, InputFile] = {}
    params = {}
    for key, value in method.model_dump(warnings=False).items():
        prepared = session.prepare_value(value, bot=bot, files=files, _dumps_json=False)
        if prepared is not None:
            params[key] = prepared
    return params, files


class JsonAiohttpSession(AiohttpSession):
    def json_body(self, bot: Bot, method: TelegramMethod[Any]) -> str | None:
        """The call's parameters as JSON, or None when it uploads a file (a form then)."""
        params, files = prepared_params(self, bot, method)
        return None if files else self.json_dumps(params)

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        body = self.json_body(bot, method)
        if body is None:
            return await super().make_request(bot, method, timeout)
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(
                url,
                data=body,
                headers=JSON_HEADERS,
                timeout=ClientTimeout(total=self.timeout if timeout is None else timeout),
            ) as resp:
                raw_result = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(
            bot=bot, method=method, status_code=resp.status, content=raw_result
        )
        return cast(TelegramType, response.result)
