"""Staff commands in the staff group: the filters that decide who may use which (staff, admins,
inside a ticket), the refusals, and the ticket commands (/close, /reopen, /info, /verify,
/note). Money and company approval: handlers/staff_admin.py; /take, /queue, /canned:
handlers/staff_tools.py."""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from datetime import timedelta
from functools import partial
from typing import Any

from aiogram import Bot, Dispatcher, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, TelegramObject
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers import staff_admin, staff_tools
from handlers.desk import (
    in_staff_chat,
    is_staff,
    post_to_staff,
    push_to_customer,
    staff_locale,
    staff_name,
    summary_text,
    sync_topic,
    verify_limit_notice,
    verify_refused_text,
)
from handlers.staff_relay import in_ticket
from keyboards.tickets import answer_kb, closed_ticket_kb, open_ticket_kb
from services.billing import Billing
from services.contracts.tickets import TEXT_MAX, Ticket
from services.errors import AlreadyDone

log = logging.getLogger(__name__)

TICKET_COMMANDS = ("close", "reopen", "info", "verify", "note", "take")
ADMIN_COMMANDS = ("credit", "debit", "approve_company")
STAFF_COMMANDS = TICKET_COMMANDS + ADMIN_COMMANDS + ("queue", "canned")
# Staff-only commands handled elsewhere in the staff group (handlers/payments.py: /refund):
# in a private chat they get the same "staff group only" answer as the others.
PRIVATE_REFUSED = (*STAFF_COMMANDS, "refund")


# ---- staff commands: filters and refusals -------------------------------------------------------
async def staff_status(
    message: Message, bot: Bot, settings: Settings, dispatcher: Dispatcher
) -> dict[str, bool]:
    """Root filter of the staff commands: whether the sender is staff, asked once per command
    (it may cost a getChatMember call) and injected as `staff` for the filters below."""
    return {"staff": await is_staff(message, bot, settings, dispatcher)}


def staff_member(message: Message, staff: bool) -> bool:
    """Filter: the sender is staff (as `staff_status` found)."""
    return staff


async def in_staff_locale(
    handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
    event: TelegramObject,
    data: dict[str, Any],
) -> Any:
    """Staff commands answer in DEFAULT_LANGUAGE."""
    with staff_locale(data["i18n"], data["settings"]):
        return await handler(event, data)


async def refuse_staff_command(message: Message, command: CommandObject, staff: bool) -> None:
    """A staff command in the staff group that no handler took: not staff, not an admin (for
    money and company approval), or not inside a ticket."""
    if not staff:
        await message.reply(_("⛔ Only support staff can use this command."))
    elif command.command in ADMIN_COMMANDS:
        await message.reply(_("⛔ Only administrators can use this command."))
    else:
        await message.reply(
            _("Use this command inside a ticket's topic, or as a reply to a message of the ticket.")
        )


async def staff_command_elsewhere(message: Message) -> None:
    await message.answer(_("This command is for support staff and works only in the staff group."))


# ---- ticket commands ------------------------------------------------------------------------
def close_notice(ticket: Ticket, days: int) -> str:
    text = _("✅ Support closed your ticket #{id} «{subject}».").format(
        id=ticket.id, subject=html.escape(ticket.subject)
    )
    if days:
        text += "\n" + ngettext(
            "If the problem is not solved, reply within {days} day to reopen it.",
            "If the problem is not solved, reply within {days} days to reopen it.",
            days,
        ).format(days=days)
    return text


def reopen_notice(ticket: Ticket) -> str:
    return _("🔄 Support reopened your ticket #{id} «{subject}».").format(
        id=ticket.id, subject=html.escape(ticket.subject)
    )


async def cmd_close(
    message: Message, ticket: Ticket, billing: Billing, bot: Bot, settings: Settings, i18n: I18n
) -> None:
    """The customer is told, with the 1-5 rating buttons unless they rated the ticket before;
    then the topic shows the new status (the customer first, the cosmetic after)."""
    already = _("Ticket #{id} is already closed.").format(id=ticket.id)
    closed = await changed(message, billing.staff_close_ticket(ticket.id), already)
    if closed is None:
        return
    rated = await billing.ticket_rating(closed.id) is not None
    notice = partial(close_notice, closed, settings.ticket_reopen_days)
    keyboard = partial(open_ticket_kb if rated else closed_ticket_kb, closed.id)
    delivered = await push_to_customer(bot, billing, settings, i18n, closed, notice, keyboard)
    await sync_topic(bot, billing, settings, i18n, closed)
    text = _("✅ Ticket #{id} is closed.").format(id=closed.id)
    await message.reply(text + "\n" + (_("The customer was notified.") if delivered else blocked()))


async def cmd_reopen(
    message: Message, ticket: Ticket, billing: Billing, bot: Bot, settings: Settings, i18n: I18n
) -> None:
    already = _("Ticket #{id} is not closed.").format(id=ticket.id)
    reopened = await changed(message, billing.staff_reopen_ticket(ticket.id), already)
    if reopened is None:
        return
    notice, keyboard = partial(reopen_notice, reopened), partial(answer_kb, reopened.id)
    delivered = await push_to_customer(bot, billing, settings, i18n, reopened, notice, keyboard)
    await sync_topic(bot, billing, settings, i18n, reopened)
    text = _("🔄 Ticket #{id} is open again.").format(id=reopened.id)
    await message.reply(text + ("" if delivered else "\n" + blocked()))


async def changed(message: Message, change: Awaitable[Ticket], already: str) -> Ticket | None:
    """The ticket after `change`; None when it was so already (and staff are told `already`)."""
    try:
        return await change
    except AlreadyDone:
        await message.reply(already)
        return None


def blocked() -> str:
    return _("⚠️ The customer has blocked the bot.")


async def cmd_info(message: Message, ticket: Ticket, billing: Billing) -> None:
    await message.reply(summary_text(await billing.account_summary(ticket.account_id)))


async def cmd_verify(
    message: Message,
    command: CommandObject,
    ticket: Ticket,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
    """Checks a customer's code word without showing it; at most VERIFY_MAX_ATTEMPTS checks per
    customer within VERIFY_WINDOW_MINUTES (counted in the database, before the comparison), and
    the staff group is told once when the limit is reached."""
    word = (command.args or "").strip()
    if not word:
        await message.reply(_("Usage: /verify &lt;code word&gt;"))
        return
    user_id = message.from_user.id if message.from_user else 0
    attempt = await billing.take_code_word_attempt(
        ticket.account_id,
        user_id,
        limit=settings.verify_max_attempts,
        window=timedelta(minutes=settings.verify_window_minutes),
    )
    matches = attempt.allowed and await billing.check_code_word(ticket.account_id, word)
    try:  # the code word (or a guess at it) should not stay in the group's history
        await bot.delete_message(message.chat.id, message.message_id)
    except TelegramAPIError:
        pass
    if not attempt.allowed:
        text = verify_refused_text(ticket, attempt, settings)
    elif matches:
        text = _("✅ The code word matches (ticket #{id}).").format(id=ticket.id)
    else:
        text = _("❌ The code word does not match (ticket #{id}).").format(id=ticket.id)
    sent = await bot.send_message(
        message.chat.id, text, message_thread_id=message.message_thread_id
    )
    await billing.link_staff_message(message.chat.id, sent.message_id, ticket.id)
    if attempt.first_refusal:
        log.warning(
            "Code word checks of account %s refused: %d within %d minutes",
            ticket.account_id,
            settings.verify_max_attempts,
            settings.verify_window_minutes,
        )
        await post_to_staff(
            bot, billing, settings, i18n, ticket, verify_limit_notice(ticket, settings)
        )


async def cmd_note(
    message: Message, command: CommandObject, ticket: Ticket, billing: Billing
) -> None:
    text = (command.args or "").strip()
    if not text:
        await message.reply(_("Usage: /note &lt;text&gt;"))
        return
    if len(text) > TEXT_MAX:
        await message.reply(_("Too long: at most {max} characters.").format(max=TEXT_MAX))
        return
    user_id = message.from_user.id if message.from_user else 0
    await billing.add_staff_note(ticket.id, user_id, staff_name(message), text)
    await billing.link_staff_message(message.chat.id, message.message_id, ticket.id)
    await message.reply(
        _("📝 Note saved to ticket #{id}. The customer does not see it.").format(id=ticket.id)
    )


def staff_commands_router() -> Router:
    """In the staff group only; `staff_status` runs once per command, before any handler."""
    router = Router(name="staff_commands")
    router.message.filter(in_staff_chat, Command(*STAFF_COMMANDS), staff_status)
    router.message.middleware(in_staff_locale)
    router.message.register(cmd_close, Command("close"), staff_member, in_ticket)
    router.message.register(cmd_reopen, Command("reopen"), staff_member, in_ticket)
    router.message.register(cmd_info, Command("info"), staff_member, in_ticket)
    router.message.register(cmd_verify, Command("verify"), staff_member, in_ticket)
    router.message.register(cmd_note, Command("note"), staff_member, in_ticket)
    staff_tools.register(router, staff_member, in_ticket)
    staff_admin.register(router)
    router.message.register(refuse_staff_command)
    return router
