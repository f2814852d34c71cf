"""A per-user throttle: a token bucket per Telegram user (`rate` updates a second, `burst` at
once), checked before the billing transaction, so a flood costs no database work.

The first update dropped in an episode gets one short answer (a reply to a message, a toast on
a button); the rest of the episode is dropped silently. The episode ends when the user's bucket
is full again. Payments (pre-checkout queries, successful payments) are never dropped; updates
without a user pass.

The messages of one album count as one update, and the staff group is not throttled (an
agent pasting several replies must not lose one). Memory stays bounded: buckets are kept in
order of use, and one untouched for `burst / rate` seconds is full, which is the same as having
none, so it is forgotten; `max_users` caps the rest. The clock is injectable (tests).
"""

from __future__ import annotations

import enum
import logging
import time
from collections import OrderedDict
from collections.abc import Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.exceptions import TelegramAPIError
from aiogram.types import TelegramObject, Update, User
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.flow_control import one_line
from bot.middlewares import Handler, update_data
from services.languages import pick_language

log = logging.getLogger(__name__)


class Verdict(enum.Enum):
    PASS = "pass"
    FIRST_DROP = "first drop"  # the first of an episode: answered once
    DROP = "drop"


class _Bucket:
    __slots__ = ("stamp", "tokens", "warned")

    def __init__(self, tokens: float, stamp: float) -> None:
        self.tokens, self.stamp, self.warned = tokens, stamp, False


def exempt(update: Update) -> bool:
    """Payments must never be dropped."""
    if update.pre_checkout_query is not None or update.shipping_query is not None:
        return True
    message = update.message
    return message is not None and (
        message.successful_payment is not None or message.refunded_payment is not None
    )


class UserThrottle(BaseMiddleware):
    def __init__(
        self,
        i18n: I18n,
        rate: float = 3.0,
        burst: int = 10,
        *,
        clock: Callable[[], float] = time.monotonic,
        max_users: int = 100_000,
        exempt_chats: frozenset[int] = frozenset(),
    ) -> None:
        self.i18n = i18n
        self.exempt_chats = exempt_chats  # the staff group: agents' replies are never dropped
        self._albums: OrderedDict[str, None] = OrderedDict()  # media groups already counted
        self.rate, self.burst = float(rate), float(burst)
        self.clock = clock
        self.max_users = max_users
        self._buckets: OrderedDict[int, _Bucket] = OrderedDict()  # least recently used first

    def __len__(self) -> int:
        return len(self._buckets)

    def check(self, user_id: int) -> Verdict:
        now = self.clock()
        self._prune(now)
        bucket = self._buckets.pop(user_id, None)
        if bucket is None:
            bucket = _Bucket(self.burst, now)
        elif now > bucket.stamp:
            bucket.tokens = min(self.burst, bucket.tokens + (now - bucket.stamp) * self.rate)
            bucket.stamp = now
        if bucket.tokens >= self.burst - 1e-9:
            bucket.warned = False  # full again: the episode is over
        self._buckets[user_id] = bucket
        if len(self._buckets) > self.max_users:
            self._buckets.popitem(last=False)
        if bucket.tokens >= 1 - 1e-9:
            bucket.tokens = max(0.0, bucket.tokens - 1)
            return Verdict.PASS
        if bucket.warned:
            return Verdict.DROP
        bucket.warned = True
        return Verdict.FIRST_DROP

    def _album_counted(self, update: Update) -> bool:
        """An album (up to ten photos) arrives as one update per photo: it costs one token."""
        group = update.message.media_group_id if update.message is not None else None
        if group is None:
            return False
        if group in self._albums:
            return True
        self._albums[group] = None
        if len(self._albums) > 10_000:
            self._albums.popitem(last=False)
        return False

    def _prune(self, now: float) -> None:
        """Forget buckets that are full by now (untouched for burst / rate seconds)."""
        horizon = now - self.burst / self.rate
        while self._buckets:
            user_id, bucket = next(iter(self._buckets.items()))
            if bucket.stamp > horizon:
                return
            del self._buckets[user_id]

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        context = update_data(data)
        user = context.get("event_from_user")
        if user is None or not isinstance(event, Update) or exempt(event):
            return await handler(event, data)
        chat = context.get("event_chat")
        if (chat is not None and chat.id in self.exempt_chats) or self._album_counted(event):
            return await handler(event, data)
        verdict = self.check(user.id)
        if verdict is Verdict.PASS:
            return await handler(event, data)
        if verdict is Verdict.FIRST_DROP:
            log.info("User %s is sending too fast: updates dropped for a moment", user.id)
            await self._answer(event, user)
        return None

    def notice(self, user: User) -> str:
        """The answer to the first dropped update, in the user's Telegram language (the
        account's own choice is not known yet: that needs the database)."""
        locale = pick_language(None, user.language_code, self.i18n.default_locale)
        with self.i18n.context(), self.i18n.use_locale(locale):
            return _("Too many requests — please wait a moment.")

    async def _answer(self, update: Update, user: User) -> None:
        try:
            if update.message is not None:
                await update.message.reply(self.notice(user))
            elif update.callback_query is not None:
                await update.callback_query.answer(self.notice(user))
        except TelegramAPIError as exc:
            log.warning("Throttle notice to user %s not sent: %s", user.id, one_line(exc.message))
