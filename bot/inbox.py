"""Payment updates are kept in the local database before they are handled.

Long polling acknowledges an update as soon as the next getUpdates asks for a later offset,
which aiogram does while the update's handler is still running: a process killed then would
lose a payment Telegram has already charged. So the polling dispatcher commits every
`successful_payment` update before yielding it (and so before the acknowledgement), the
webhook path keeps it in an outer middleware, and on start the updates that were kept but not
answered are handled again — crediting is idempotent by the charge id, so a replay credits
only what the killed process had not.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import AsyncGenerator
from datetime import datetime
from typing import Any

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.types import TelegramObject, Update

from bot.middlewares import Handler, update_data
from services.billing import Billing, per_call
from services.errors import BillingUnavailable

log = logging.getLogger(__name__)

KEEP_RETRY_SECONDS = (0.5, 1.0, 2.0, 5.0)


def payment_charge_id(update: Update) -> str | None:
    message = update.message
    if message is None or message.successful_payment is None:
        return None
    return message.successful_payment.telegram_payment_charge_id


async def keep_payment_update(billing: Billing, update: Update) -> None:
    charge_id = payment_charge_id(update)
    if charge_id is not None:
        body = update.model_dump_json(exclude_none=True)
        await billing.keep_payment_update(charge_id, update.update_id, body)


class PaymentInboxMiddleware(BaseMiddleware):
    """Keeps a payment update before any handler runs (webhook mode and replays; in polling
    mode DurableDispatcher has kept it already and this is a no-op)."""

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        if isinstance(event, Update):
            await keep_payment_update(update_data(data)["billing"], event)
        return await handler(event, data)


class DurableDispatcher(Dispatcher):
    """A Dispatcher whose long polling commits payment updates before acknowledging them."""

    async def _listen_updates(  # type: ignore[override]
        self, bot: Bot, *args: Any, **kwargs: Any
    ) -> AsyncGenerator[Update, None]:
        billing = per_call(self["gateway"])
        async for update in super()._listen_updates(bot, *args, **kwargs):
            # The parent asks for the next batch (acknowledging this one) only after every
            # update of this batch was yielded, so this commit comes first.
            await _keep_until_stored(billing, update)
            yield update


async def _keep_until_stored(billing: Billing, update: Update) -> None:
    """Polling waits while the database is unreachable: nothing could be handled anyway, and an
    unacknowledged update is delivered again."""
    delays = itertools.chain(KEEP_RETRY_SECONDS, itertools.repeat(KEEP_RETRY_SECONDS[-1]))
    while True:
        try:
            await keep_payment_update(billing, update)
            return
        except Exception:
            log.exception("Could not keep payment update %s; retrying", update.update_id)
            await asyncio.sleep(next(delays))


async def replay_payment_updates(dp: Dispatcher, bot: Bot, received_before: datetime) -> int:
    """Handle again the kept payment updates that were never answered; returns how many."""
    billing = per_call(dp["gateway"])
    bodies = await billing.unanswered_payment_updates(received_before)
    for body in bodies:
        update = Update.model_validate_json(body, context={"bot": bot})
        log.warning("Replaying payment update %s left unanswered", update.update_id)
        await dp.feed_update(bot, update)
    return len(bodies)


async def replay_when_reachable(dp: Dispatcher, bot: Bot, received_before: datetime) -> int:
    """The periodic replay (bot/scheduler.py): like `replay_payment_updates`, but each update
    only once the billing answers for its customer (the account lookup the middlewares make),
    so that a payment kept while an external billing was down is pushed to it when it is back
    and the customer hears nothing more meanwhile. Returns how many were handled."""
    billing = per_call(dp["gateway"])
    replayed = 0
    for body in await billing.unanswered_payment_updates(received_before):
        update = Update.model_validate_json(body, context={"bot": bot})
        user = update.message.from_user if update.message is not None else None
        if user is not None:
            try:
                await billing.find_account_by_telegram(user.id)
            except BillingUnavailable:
                log.info("Billing still unavailable: payment replays wait for the next run")
                break
        log.warning("Replaying payment update %s left unanswered", update.update_id)
        await dp.feed_update(bot, update)
        replayed += 1
    return replayed
