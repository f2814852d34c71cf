"""The reminder job: one reminder in a ticket's topic when it waits for the support longer
than TICKET_REMINDER_MINUTES."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta
from pathlib import Path

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.i18n import I18n, ngettext

from bot.config import Settings
from handlers.desk import make_desk, staff_locale
from services.billing import BillingGateway, per_call

log = logging.getLogger(__name__)

LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


# ---- the reminder job -------------------------------------------------------------------------
_job_i18n: dict[str, I18n] = {}


def _i18n_for(settings: Settings) -> I18n:
    if settings.default_language not in _job_i18n:
        _job_i18n[settings.default_language] = I18n(
            path=LOCALES_DIR, default_locale=settings.default_language, domain="messages"
        )
    return _job_i18n[settings.default_language]


async def remind_unanswered(
    gateway: BillingGateway,
    bot: Bot,
    settings: Settings,
    now: datetime,
    i18n: I18n | None = None,
) -> int:
    """One reminder in a ticket's topic when it waits for the support longer than
    TICKET_REMINDER_MINUTES. Safe to run often and on several instances; returns how many
    reminders were posted."""
    if settings.staff_chat_id is None:
        return 0
    i18n = i18n or _i18n_for(settings)
    since = now - timedelta(minutes=settings.ticket_reminder_minutes)
    billing = per_call(gateway)  # short transactions: none stays open while posting
    due = await billing.tickets_awaiting_reminder(since)
    desk = make_desk(bot, billing, settings, i18n)
    assert desk is not None
    posted = 0
    for ticket in due:
        if await billing.was_ticket_reminded(ticket.id, ticket.updated_at):
            continue  # an external billing's scan cannot see the bot's marks
        minutes = int((now - ticket.updated_at).total_seconds() // 60)
        with staff_locale(i18n, settings):
            text = ngettext(
                "⏰ Ticket #{id} has been waiting for an answer for {minutes} minute.",
                "⏰ Ticket #{id} has been waiting for an answer for {minutes} minutes.",
                minutes,
            ).format(id=ticket.id, minutes=minutes)
        try:
            await desk.post(ticket, text)
        except TelegramAPIError:  # not marked: the next run tries again
            log.warning("reminder for ticket %s failed", ticket.id, exc_info=True)
            continue
        # Posted first, marked after: the job runs under a lease, so only a crash between the
        # two could repeat a reminder, and a reminder is never lost to a failed post.
        if await billing.mark_ticket_reminded(ticket.id, ticket.updated_at, now):
            posted += 1
    return posted
