"""/broadcast for admins, in a private chat with the bot: compose (text with formatting, or a
photo with a caption), preview exactly what subscribers will get, confirm. The messages go
through the outbox (one row per newsletter subscriber, written in one statement) and the
sender; the confirmation turns into a progress message the sender edits in place (sent,
failed, left, rate, ETA) and finally into the report. "Stop" cancels what is not sent yet."""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, F, Router
from aiogram.exceptions import TelegramBadRequest
from aiogram.filters import Command, StateFilter
from aiogram.fsm.context import FSMContext
from aiogram.fsm.state import State, StatesGroup
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _
from babel.dates import format_timedelta
from babel.numbers import format_decimal

from bot.config import Settings
from keyboards.alerts import (
    BroadcastAction,
    BroadcastCb,
    broadcast_confirm_kb,
    broadcast_progress_kb,
)
from services.billing import Billing
from services.contracts.alerts import CANCELLED, DONE, BroadcastInfo

log = logging.getLogger(__name__)

TEXT_LIMIT = 4096
CAPTION_LIMIT = 1024


class BroadcastForm(StatesGroup):
    compose = State()
    confirm = State()


def is_admin(user_id: int | None, settings: Settings) -> bool:
    return user_id is not None and user_id in settings.admin_ids


def _user_id(event: Message | CallbackQuery) -> int | None:
    return event.from_user.id if event.from_user else None


# ---- texts -----------------------------------------------------------------------------------
def progress_text(info: BroadcastInfo, now: datetime, locale: str, final: bool = False) -> str:
    if info.status == CANCELLED:
        return _(
            "📣 <b>Broadcast #{id} stopped</b>\n"
            "Sent: {sent} · failed: {failed} · not sent: {cancelled} (of {total})"
        ).format(
            id=info.id,
            sent=info.sent,
            failed=info.failed,
            cancelled=info.cancelled + info.pending,
            total=info.total,
        )
    started = info.started_at or info.created_at
    if final or info.status == DONE:
        took = (info.finished_at or now) - started
        return _(
            "📣 <b>Broadcast #{id} finished</b>\n"
            "Sent: {sent} · failed: {failed} (of {total})\n"
            "Took {duration}."
        ).format(
            id=info.id,
            sent=info.sent,
            failed=info.failed,
            total=info.total,
            duration=format_timedelta(took, threshold=2, locale=locale),
        )
    elapsed = max((now - started).total_seconds(), 0.001)
    done = info.sent + info.failed
    rate = done / elapsed
    eta = (
        format_timedelta(timedelta(seconds=info.pending / rate), threshold=2, locale=locale)
        if rate > 0
        else _("unknown")
    )
    return _(
        "📣 <b>Broadcast #{id}</b> is being sent\n"
        "Sent: {sent} · failed: {failed} · left: {left} (of {total})\n"
        "Rate: {rate} msg/s · ETA: {eta}"
    ).format(
        id=info.id,
        sent=info.sent,
        failed=info.failed,
        left=info.pending,
        total=info.total,
        rate=format_decimal(round(rate, 1), format="0.0", locale=locale),
        eta=eta,
    )


async def _edit(bot: Bot, chat_id: int, message_id: int, text: str, markup: Any) -> None:
    try:
        await bot.edit_message_text(
            text=text, chat_id=chat_id, message_id=message_id, reply_markup=markup
        )
    except TelegramBadRequest as exc:
        if "message is not modified" not in exc.message:
            raise


async def report_progress(
    bot: Bot, info: BroadcastInfo, now: datetime, final: bool, *, i18n: I18n
) -> None:
    """The sender's ProgressReporter (bound to i18n by bot/scheduler.py): edits the progress
    message in the admin's language."""
    if info.progress_chat_id is None or info.progress_message_id is None:
        return
    locale = info.language if info.language in i18n.available_locales else i18n.default_locale
    with i18n.context(), i18n.use_locale(locale):
        text = progress_text(info, now, locale, final)
        markup = None if final else broadcast_progress_kb(info.id)
    await _edit(bot, info.progress_chat_id, info.progress_message_id, text, markup)


# ---- dialog ----------------------------------------------------------------------------------
async def cmd_broadcast(message: Message, state: FSMContext, settings: Settings) -> None:
    if not is_admin(_user_id(message), settings):
        await message.answer(_("This command is for administrators."))
        return
    await state.set_state(BroadcastForm.compose)
    await message.answer(
        _(
            "📣 <b>New broadcast</b>\n"
            "Send the message for the newsletter subscribers: text with formatting, or a photo "
            "with a caption. /cancel to stop."
        )
    )


async def compose(
    message: Message, state: FSMContext, billing: Billing, settings: Settings, bot: Bot
) -> None:
    if not is_admin(_user_id(message), settings):
        await state.clear()
        return
    photo = message.photo[-1].file_id if message.photo else None
    if photo:
        text = message.html_text if message.caption else ""
        if len(message.caption or "") > CAPTION_LIMIT:
            await message.answer(
                _("The caption is too long: at most {limit} characters.").format(
                    limit=CAPTION_LIMIT
                )
            )
            return
    elif message.text:
        text = message.html_text
        if len(message.text) > TEXT_LIMIT:
            await message.answer(
                _("The text is too long: at most {limit} characters.").format(limit=TEXT_LIMIT)
            )
            return
    else:
        await message.answer(_("Please send text or a photo with a caption."))
        return
    await state.update_data(text=text, photo=photo)
    await state.set_state(BroadcastForm.confirm)
    await message.answer(_("👀 Preview — subscribers will receive exactly this:"))
    if photo:
        await bot.send_photo(message.chat.id, photo, caption=text or None)
    else:
        await bot.send_message(message.chat.id, text)
    count = await billing.newsletter_subscriber_count()
    await message.answer(
        _("Send it to {count} newsletter subscribers?").format(count=count),
        reply_markup=broadcast_confirm_kb(count),
    )


async def confirm_send(
    query: CallbackQuery, state: FSMContext, billing: Billing, settings: Settings, i18n: I18n
) -> None:
    if not is_admin(_user_id(query), settings):
        await query.answer(_("This command is for administrators."), show_alert=True)
        return
    data = await state.get_data()
    if "text" not in data:
        await query.answer(_("This draft is gone. Start again with /broadcast."), show_alert=True)
        return
    if await billing.newsletter_subscriber_count() == 0:
        await query.answer(_("There are no newsletter subscribers yet."), show_alert=True)
        return
    now = datetime.now(UTC)
    draft = await billing.create_broadcast(
        query.from_user.id, data["text"], data.get("photo"), i18n.current_locale
    )
    info = await billing.start_broadcast(draft.id, now)
    await state.clear()
    message = query.message
    if isinstance(message, Message):
        text = progress_text(info, now, i18n.current_locale)
        edited = await message.edit_text(text, reply_markup=broadcast_progress_kb(info.id))
        chat_id = message.chat.id
        message_id = edited.message_id if isinstance(edited, Message) else message.message_id
        await billing.set_broadcast_progress_message(info.id, chat_id, message_id)
    await query.answer(_("Queued for {count} subscribers.").format(count=info.total))


async def discard(query: CallbackQuery, state: FSMContext) -> None:
    await state.clear()
    if isinstance(query.message, Message):
        await query.message.edit_text(_("Broadcast discarded. Nothing was sent."))
    await query.answer()


async def stop(
    query: CallbackQuery,
    callback_data: BroadcastCb,
    billing: Billing,
    settings: Settings,
    i18n: I18n,
) -> None:
    if not is_admin(_user_id(query), settings):
        await query.answer(_("This command is for administrators."), show_alert=True)
        return
    now = datetime.now(UTC)
    info = await billing.cancel_broadcast(callback_data.broadcast_id, now)
    if isinstance(query.message, Message):
        await _edit(
            query.bot,  # type: ignore[arg-type]
            query.message.chat.id,
            query.message.message_id,
            progress_text(info, now, i18n.current_locale),
            None,
        )
    await query.answer(_("The broadcast is stopped."))


async def stale_confirm(query: CallbackQuery) -> None:
    await query.answer(_("This draft is gone. Start again with /broadcast."), show_alert=True)


def create_router() -> Router:
    router = Router(name="broadcast")
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.message.register(cmd_broadcast, Command("broadcast"))
    router.message.register(compose, BroadcastForm.compose, ~F.text.startswith("/"))
    router.callback_query.register(
        confirm_send, BroadcastForm.confirm, BroadcastCb.filter(F.action == BroadcastAction.SEND)
    )
    router.callback_query.register(discard, BroadcastCb.filter(F.action == BroadcastAction.DROP))
    router.callback_query.register(stop, BroadcastCb.filter(F.action == BroadcastAction.STOP))
    router.callback_query.register(
        stale_confirm, StateFilter(None), BroadcastCb.filter(F.action == BroadcastAction.SEND)
    )
    return router
