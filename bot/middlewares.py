"""Per-update middlewares: the billing handlers use, the caller's account, and the locale."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, cast

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.middlewares.data import MiddlewareData
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import TelegramObject, Update, User
from aiogram.utils.i18n import I18n, I18nMiddleware

from services.billing import Billing, BillingGateway, in_transaction, per_call
from services.contracts.common import Account
from services.languages import pick_language, supported_language

log = logging.getLogger(__name__)

Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]


class UpdateData(MiddlewareData, total=False):
    """What `data` holds for a handler: aiogram's keys (bot, state, event_from_user, …) and
    ours; a handler takes any of them as an argument of the same name."""

    billing: Billing  # BillingMiddleware: every call its own short transaction
    account: Account | None  # AccountMiddleware: None outside a private chat
    account_created: bool  # AccountMiddleware, with an account: it was created by this update


def update_data(data: dict[str, Any]) -> UpdateData:
    """`data` seen as UpdateData: the same dict, so writes go to it. (aiogram types it
    `dict[str, Any]` in BaseMiddleware.__call__, which an override may not narrow.)"""
    return cast(UpdateData, data)


class InFlightUpdates(BaseMiddleware):
    """Tracks updates being handled, so shutdown can let them finish before the billing and
    the bot session close (aiogram's polling does not wait for its update tasks)."""

    def __init__(self) -> None:
        self._active = 0
        self._idle = asyncio.Event()
        self._idle.set()

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        self._active += 1
        self._idle.clear()
        try:
            return await handler(event, data)
        finally:
            self._active -= 1
            if self._active == 0:
                self._idle.set()

    async def wait_idle(self, timeout: float) -> bool:
        """True when every update finished within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._idle.wait(), timeout)
        except TimeoutError:
            return False
        return True


class TransactionGuard(BaseRequestMiddleware):
    """Logs an error for a Bot API call made while the calling task has a billing transaction
    open: the rule is commit first, then talk to Telegram (the tests' stand-in refuses such a
    call outright; e2e tests look for this line in the process log)."""

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        if in_transaction():
            log.error("Bot API call %s inside a billing transaction", method.__api_method__)
        return await make_request(bot, method)


class BillingMiddleware(BaseMiddleware):
    """Hands handlers a billing whose every call is its own short transaction, committed
    before the call returns: no transaction is ever open while a handler talks to Telegram,
    and a failed reply can no longer undo a payment that was recorded."""

    def __init__(self, gateway: BillingGateway) -> None:
        self.billing = per_call(gateway)

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        update_data(data)["billing"] = self.billing
        return await handler(event, data)


def _private_user(update: Update) -> User | None:
    """The user of an update that happens in a private chat with the bot (or has no chat)."""
    event = update.event
    user: User | None = getattr(event, "from_user", None)
    if user is None or user.is_bot:
        return None
    chat = getattr(event, "chat", None)
    message = getattr(event, "message", None)
    if chat is None and message is not None:
        chat = message.chat  # callback query
    if chat is not None and chat.type != "private":
        return None
    return user


def _needs_refresh(account: Account, user: User) -> bool:
    """The account's copy of the chat and name is stale (or it was marked unreachable), or it
    has no language yet while Telegram says one we speak (then remembered for the alerts)."""
    return (
        account.chat_id != user.id
        or account.unreachable
        or account.telegram_name != user.full_name
        or (account.language is None and supported_language(user.language_code) is not None)
    )


class AccountMiddleware(BaseMiddleware):
    """Resolves the caller's billing account (created on first contact in a private chat)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context = update_data(data)
        context["account"] = None
        user = _private_user(event) if isinstance(event, Update) else None
        if user is not None:
            billing = context["billing"]
            account = await billing.find_account_by_telegram(user.id)  # a read: no write lock
            created = False
            if account is None or _needs_refresh(account, user):
                account, created = await billing.get_or_create_account(
                    user.id,
                    user.id,
                    name=user.full_name,
                    username=user.username,
                    language=supported_language(user.language_code),
                )
            context["account"] = account
            context["account_created"] = created
        return await handler(event, data)


class AccountI18nMiddleware(I18nMiddleware):
    """Language: the account's choice, else Telegram's language_code, else the default."""

    def __init__(self, i18n: I18n, default_language: str) -> None:
        super().__init__(i18n)
        self.default_language = default_language

    async def get_locale(self, event: TelegramObject, data: dict[str, Any]) -> str:
        context = update_data(data)
        account = context.get("account")
        user = context.get("event_from_user")
        return pick_language(
            account.language if account else None,
            user.language_code if user else None,
            self.default_language,
        )
