"""bot/json_session.py: Bot API calls go as one JSON document (what the Bot API reads as well
as a form), a call with a file still as aiogram's multipart form; errors and timeouts are
aiogram's own exceptions."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError
from aiogram.types import BufferedInputFile, InlineKeyboardButton, InlineKeyboardMarkup
from aiohttp import web
from aiohttp.test_utils import TestServer

from bot.factory import create_bot
from bot.json_session import JsonAiohttpSession
from tests.conftest import make_settings
from tests.harness.telegram import TOKEN

MESSAGE = {
    "message_id": 7,
    "date": 1_700_000_000,
    "chat": {"id": 42, "type": "private"},
    "text": "Hi",
}


@pytest.fixture
async def api() -> AsyncIterator[tuple[TestServer, list[tuple[str, str, Any]]]]:
    seen: list[tuple[str, str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        method = request.match_info["method"]
        if request.content_type == "application/json":
            seen.append((method, request.content_type, await request.json()))
        else:
            form = await request.post()
            seen.append((method, request.content_type, sorted(form.keys())))
        if method == "sendMessage" and seen[-1][2].get("text") == "bad":
            return web.json_response(
                {"ok": False, "error_code": 400, "description": "Bad Request: nope"}, status=400
            )
        return web.json_response({"ok": True, "result": MESSAGE})

    app = web.Application()
    app.router.add_post("/bot{token}/{method}", handle)
    server = TestServer(app)
    await server.start_server()
    yield server, seen
    await server.close()


def bot_for(server: TestServer) -> Bot:
    base = str(server.make_url("")).rstrip("/")
    session = JsonAiohttpSession(api=TelegramAPIServer.from_base(base))
    return Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=ParseMode.HTML))


async def test_a_call_goes_as_json_with_its_defaults_and_keyboard(api: Any) -> None:
    server, seen = api
    bot = bot_for(server)
    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="📦 Orders", callback_data="menu:orders")]]
    )
    try:
        sent = await bot.send_message(42, "<b>Hi</b> «там»", reply_markup=keyboard)
    finally:
        await bot.session.close()
    assert sent.message_id == 7
    assert seen == [
        (
            "sendMessage",
            "application/json",
            {
                "chat_id": 42,
                "text": "<b>Hi</b> «там»",
                "parse_mode": "HTML",
                "reply_markup": {
                    "inline_keyboard": [[{"text": "📦 Orders", "callback_data": "menu:orders"}]]
                },
            },
        )
    ]


async def test_a_file_goes_as_a_multipart_form(api: Any) -> None:
    server, seen = api
    bot = bot_for(server)
    try:
        await bot.send_document(42, BufferedInputFile(b"%PDF-1.4", filename="invoice.pdf"))
    finally:
        await bot.session.close()
    [(method, content_type, fields)] = seen
    assert (method, content_type) == ("sendDocument", "multipart/form-data")
    assert "chat_id" in fields and "document" in fields and len(fields) >= 3


async def test_telegrams_refusal_and_a_dead_server_are_aiograms_exceptions(api: Any) -> None:
    server, _ = api
    bot = bot_for(server)
    try:
        with pytest.raises(TelegramBadRequest, match="nope"):
            await bot.send_message(42, "bad")
        await server.close()
        with pytest.raises(TelegramNetworkError):
            await bot.send_message(42, "Hi")
    finally:
        await bot.session.close()


def test_the_production_bot_uses_it() -> None:
    bot = create_bot(make_settings("sqlite+aiosqlite://"))
    assert isinstance(bot.session, JsonAiohttpSession)
    assert json.loads(bot.session.json_dumps({"a": "é"})) == {"a": "é"}
