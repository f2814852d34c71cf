"""Drive the real Dispatcher in-process: feed updates as a user would, read the API calls."""

from __future__ import annotations

import logging
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update

from bot.throttle import UserThrottle
from tests.harness.telegram import Call, Chat, FakeTelegram, User


class _ErrorCollector(logging.Handler):
    def __init__(self) -> None:
        super().__init__(level=logging.ERROR)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)


class HumanPace:
    """A clock for the per-user throttle (bot/throttle.py) on which every reading is a second
    after the previous one: the scripted users of these tests type and press far faster than
    people do, and the throttle sees them at one update a second. Throttle tests set their own
    clock."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        self.now += 1.0
        return self.now


class BotDriver:
    """Each action returns the API calls the bot made while handling it. An unexpected
    exception inside a handler (logged by the central error handler) fails the test."""

    def __init__(self, dp: Dispatcher, bot: Bot, fake: FakeTelegram, billing_gateway: Any) -> None:
        self.dp, self.bot, self.fake, self.gateway = dp, bot, fake, billing_gateway
        self._errors = _ErrorCollector()
        logging.getLogger("handlers.errors").addHandler(self._errors)
        self.allow_unexpected_errors = False
        for middleware in dp.update.outer_middleware:
            if isinstance(middleware, UserThrottle):
                middleware.clock = HumanPace()

    def close(self) -> None:
        logging.getLogger("handlers.errors").removeHandler(self._errors)

    async def feed(self, update: dict[str, Any]) -> list[Call]:
        start = len(self.fake.calls)
        await self.dp.feed_update(
            self.bot, Update.model_validate(update, context={"bot": self.bot})
        )
        if self._errors.records and not self.allow_unexpected_errors:
            record = self._errors.records.pop()
            raise AssertionError(f"handler crashed: {record.exc_info[1]!r}") from record.exc_info[1]
        return self.fake.calls[start:]

    async def send(self, user: User, text: str | None = None, **kwargs: Any) -> list[Call]:
        return await self.feed(self.fake.user_message(user, text, **kwargs))

    async def press(self, user: User, message: dict[str, Any] | Call, data: str) -> list[Call]:
        return await self.feed(self.fake.press(user, message, data))

    async def click(self, user: User, message: Call, button_text: str) -> list[Call]:
        """Press the button whose label contains `button_text` under a message the bot sent."""
        return await self.press(user, message, message.callback_data(button_text))

    def screen(self, chat_id: int) -> dict[str, Any]:
        """The newest message the bot has in a chat, as it looks now (after edits)."""
        own = [
            m
            for (c, _), m in self.fake.messages.items()
            if c == chat_id and m["from"].get("is_bot")
        ]
        assert own, f"the bot has no message in chat {chat_id}"
        return max(own, key=lambda m: m["message_id"])

    def screen_call(self, chat_id: int) -> Call:
        """The newest bot message in a chat wrapped as a Call (for .click / .buttons)."""
        message = self.screen(chat_id)
        return Call(
            "message",
            {"text": message.get("text"), "reply_markup": message.get("reply_markup")},
            result=message,
        )

    def user(self, user_id: int = 501, language_code: str | None = "en", **kwargs: Any) -> User:
        user = User(id=user_id, language_code=language_code, **kwargs)
        self.fake.add_chat(Chat(id=user_id, first_name=user.first_name))
        return user


def texts(calls: list[Call]) -> list[str]:
    return [c.text for c in calls if c.text]
