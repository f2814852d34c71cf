"""The Telegram stand-in served over HTTP on loopback, for the real `python -m bot` process.

Requests are parsed the way Telegram parses aiogram's multipart form posts, then handled by
the same FakeTelegram core the in-process tests use.
"""

from __future__ import annotations

import asyncio
import json
import socket
from typing import Any

from aiohttp import web

from tests.harness.telegram import TOKEN, ConnectionDropped, FakeTelegram

# Parameters that are plain strings even when they look like numbers or JSON.
TEXT_FIELDS = {
    "text",
    "caption",
    "title",
    "description",
    "payload",
    "name",
    "url",
    "secret_token",
    "error_message",
    "start_parameter",
    "provider_token",
    "callback_query_id",
    "pre_checkout_query_id",
    "telegram_payment_charge_id",
    "currency",
    "parse_mode",
    "photo",
    "document",
    "language_code",
    "icon_custom_emoji_id",
    "from_chat_id_str",
}


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _decode(key: str, value: str) -> Any:
    if key in TEXT_FIELDS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


class TelegramServer:
    def __init__(self, fake: FakeTelegram, token: str = TOKEN) -> None:
        self.fake = fake
        self.token = token
        self.port = free_port()
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _handle(self, request: web.Request) -> web.Response:
        if request.match_info["token"] != self.token:
            return web.json_response(
                {"ok": False, "error_code": 401, "description": "Unauthorized"}, status=401
            )
        if request.content_type == "application/json":
            params = await request.json()
        else:
            form = await request.post()
            params = {k: _decode(k, v) for k, v in form.items() if isinstance(v, str)}
        params.update({k: _decode(k, v) for k, v in request.query.items()})
        try:
            status, body = await self.fake.handle(request.match_info["method"], params)
        except ConnectionDropped:
            # The bot gets no answer: the connection closes (see FakeTelegram.drop_next/hold).
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=502)
        return web.json_response(body, status=status)

    async def start(self) -> None:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()


async def raw_webhook_post(host: str, port: int, path: str, secret: bytes, body: bytes) -> int:
    """A webhook request written byte by byte, so the secret header may be bytes aiohttp's
    client would refuse to send (not ASCII). Returns the HTTP status."""
    reader, writer = await asyncio.open_connection(host, port)
    writer.write(
        b"POST " + path.encode() + b" HTTP/1.1\r\nHost: " + host.encode() + b"\r\n"
        b"Content-Type: application/json\r\nConnection: close\r\n"
        b"X-Telegram-Bot-Api-Secret-Token: " + secret + b"\r\n"
        b"Content-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body
    )
    await writer.drain()
    status_line = await reader.readline()
    writer.close()
    await writer.wait_closed()
    return int(status_line.split()[1])
