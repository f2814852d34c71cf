"""Telegram's flow control for every Bot API call the bot makes (a session request middleware,
installed by `bot.factory.create_bot`).

- 429 (TelegramRetryAfter): wait exactly `retry_after` and try again, while one wait is at most
  `max_wait` (5 s) and all waits for this call together stay within `max_total_wait` (twice
  `max_wait`); a longer one is re-raised at once, so the caller can queue the call (the outbox,
  the staff desk) or give up cleanly (the central error handler). Telegram did not perform a
  refused call, so any method may be repeated after a 429.
- 5xx (TelegramServerError) and dropped connections or timeouts (TelegramNetworkError): the
  call may or may not have been performed, so only methods that are safe to repeat (they create
  nothing twice) are retried, with an exponential backoff; the others are re-raised.

Each wait is one warning line (method and seconds), never a traceback. The sleep is injectable:
tests record the waits instead of sleeping.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.exceptions import (
    TelegramEntityTooLarge,
    TelegramNetworkError,
    TelegramRetryAfter,
    TelegramServerError,
)
from aiogram.methods.base import TelegramMethod, TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response

log = logging.getLogger(__name__)

DEFAULT_BACKOFF = (0.5, 1.0, 2.0)
MAX_FLOOD_RETRIES = 10  # 429s per call (the time bounds already hold it; this guards retry_after=0)

# Besides every get* method: calls whose repetition creates nothing twice (a repeat sets the same
# state again, or Telegram refuses it: an answered query, a deleted message, an edit that changes
# nothing, CHARGE_ALREADY_REFUNDED).
SAFE_TO_REPEAT = frozenset(
    {
        "answerCallbackQuery",
        "answerPreCheckoutQuery",
        "answerShippingQuery",
        "answerInlineQuery",
        "editMessageText",
        "editMessageCaption",
        "editMessageReplyMarkup",
        "editMessageMedia",
        "deleteMessage",
        "deleteMessages",
        "setMyCommands",
        "deleteMyCommands",
        "setMyDescription",
        "setMyShortDescription",
        "setMyName",
        "setChatMenuButton",
        "setWebhook",
        "deleteWebhook",
        "refundStarPayment",
        "editForumTopic",
        "closeForumTopic",
        "reopenForumTopic",
        "sendChatAction",
        "setMessageReaction",
        "pinChatMessage",
        "unpinChatMessage",
    }
)

Sleep = Callable[[float], Awaitable[Any]]


def safe_to_repeat(api_method: str) -> bool:
    """May this call be sent again when it is not known whether the first one was performed?
    Unknown methods are not (sendMessage, sendInvoice, createForumTopic, copyMessage, ...)."""
    return api_method.startswith("get") or api_method in SAFE_TO_REPEAT


def one_line(text: str) -> str:
    return " ".join(text.split())


class FlowControl(BaseRequestMiddleware):
    def __init__(
        self,
        *,
        max_wait: float = 5.0,
        max_total_wait: float | None = None,
        backoff: Sequence[float] = DEFAULT_BACKOFF,
        sleep: Sleep = asyncio.sleep,
    ) -> None:
        self.max_wait = max_wait
        self.max_total_wait = 2 * max_wait if max_total_wait is None else max_total_wait
        self.backoff = tuple(backoff)
        self.sleep = sleep

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        waited = 0.0  # every wait of this call: 429s and backoffs
        failures = floods = 0
        while True:
            try:
                return await make_request(bot, method)
            except TelegramRetryAfter as exc:
                wait = float(exc.retry_after)
                floods += 1
                too_long = wait > self.max_wait or waited + wait > self.max_total_wait
                if too_long or floods > MAX_FLOOD_RETRIES:
                    raise
                log.warning("429 on %s: retrying in %s s", name, exc.retry_after)
            except (TelegramServerError, TelegramNetworkError) as exc:
                if isinstance(exc, TelegramEntityTooLarge) or not safe_to_repeat(name):
                    raise
                if failures >= len(self.backoff):
                    raise
                wait = self.backoff[failures]
                if waited + wait > self.max_total_wait:
                    raise
                failures += 1
                log.warning(
                    "%s failed (%s): retry %s of %s in %s s",
                    name,
                    one_line(exc.message),
                    failures,
                    len(self.backoff),
                    wait,
                )
            waited += wait
            await self.sleep(wait)


def installed(bot: Bot) -> FlowControl | None:
    """The FlowControl on a bot's session (tests swap its sleep)."""
    return next((m for m in bot.session.middleware if isinstance(m, FlowControl)), None)
