"""Staff tools in the staff group: /take (the ticket is yours; shown in its topic's title),
/queue (tickets not closed, oldest activity first) and canned answers: /canned lists them,
/canned <name> inside a ticket sends one to the customer, and admins manage them with
/canned add <name> <text> and /canned del <name>."""

from __future__ import annotations

import html
import re
from collections.abc import Callable
from typing import Any

from aiogram import Bot, Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.desk import blocked_text, is_admin, staff_name, sync_topic, ticket_of
from handlers.staff_relay import relay_answer
from services.billing import Billing
from services.contracts.tickets import TEXT_MAX, Ticket
from services.support import STATUS_MARKS

CANNED_NAME = re.compile(r"^[a-z0-9_-]{1,32}$")
QUEUE_MAX = 30


async def cmd_take(
    message: Message, ticket: Ticket, billing: Billing, bot: Bot, settings: Settings, i18n: I18n
) -> None:
    user_id = message.from_user.id if message.from_user else 0
    name = staff_name(message)
    await billing.assign_ticket(ticket.id, user_id, name)
    await sync_topic(bot, billing, settings, i18n, ticket)
    await message.reply(
        _("🙋 {name} took ticket #{id}.").format(name=html.escape(name), id=ticket.id)
    )


async def cmd_queue(message: Message, billing: Billing) -> None:
    tickets = await billing.staff_queue(QUEUE_MAX + 1)
    if not tickets:
        await message.reply(_("📭 The queue is empty: every ticket is closed."))
        return
    taken = await billing.assignees([t.id for t in tickets])
    lines = [_("📋 <b>Queue</b> (oldest first):")]
    for ticket in tickets[:QUEUE_MAX]:
        line = f"{STATUS_MARKS.get(ticket.status, '🔴')} #{ticket.id} {html.escape(ticket.subject)}"
        if ticket.id in taken:
            line += f" · {html.escape(taken[ticket.id])}"
        lines.append(line)
    if len(tickets) > QUEUE_MAX:
        lines.append(_("… and more."))
    lines.append(_("🔴 waiting for support · 🔵 waiting for the customer"))
    await message.reply("\n".join(lines))


async def cmd_canned(
    message: Message,
    command: CommandObject,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
    args = (command.args or "").strip()
    action, _sep, rest = args.partition(" ")
    handlers: dict[str, Callable[..., Any]] = {"add": _canned_add, "del": _canned_delete}
    if not args:
        await _canned_list(message, billing)
    elif action.lower() in handlers:
        if not is_admin(message, settings):
            await message.reply(_("⛔ Only administrators can use this command."))
            return
        await handlers[action.lower()](message, billing, rest.strip())
    else:
        await _canned_send(message, billing, bot, settings, i18n, args.lower())


async def _canned_list(message: Message, billing: Billing) -> None:
    answers = await billing.canned_answers()
    if not answers:
        await message.reply(
            _("No canned answers yet. Admins add them with /canned add &lt;name&gt; &lt;text&gt;.")
        )
        return
    lines = [_("📎 <b>Canned answers</b> (send one with /canned &lt;name&gt; in a ticket):")]
    for answer in answers:
        preview = answer.text if len(answer.text) <= 60 else answer.text[:59] + "…"
        lines.append(f"• <code>{answer.name}</code> — {html.escape(preview)}")
    await message.reply("\n".join(lines))


async def _canned_add(message: Message, billing: Billing, rest: str) -> None:
    name, _sep, text = rest.partition(" ")
    name, text = name.lower(), text.strip()
    if not CANNED_NAME.match(name) or not text:
        await message.reply(
            _(
                "Usage: /canned add &lt;name&gt; &lt;text&gt; (the name: up to 32 latin letters, "
                "digits, - and _)"
            )
        )
        return
    if len(text) > TEXT_MAX:
        await message.reply(_("Too long: at most {max} characters.").format(max=TEXT_MAX))
        return
    user_id = message.from_user.id if message.from_user else 0
    new = await billing.save_canned_answer(name, text, user_id)
    reply = (
        _("✅ Canned answer «{name}» added.") if new else _("✅ Canned answer «{name}» replaced.")
    )
    await message.reply(reply.format(name=name))


async def _canned_delete(message: Message, billing: Billing, rest: str) -> None:
    name = rest.lower()
    if not CANNED_NAME.match(name):
        await message.reply(_("Usage: /canned del &lt;name&gt;"))
        return
    if await billing.delete_canned_answer(name):
        await message.reply(_("🗑 Canned answer «{name}» deleted.").format(name=name))
    else:
        await message.reply(_("There is no canned answer «{name}».").format(name=name))


async def _canned_send(
    message: Message, billing: Billing, bot: Bot, settings: Settings, i18n: I18n, name: str
) -> None:
    ticket = await ticket_of(message, billing)
    if ticket is None:
        await message.reply(
            _("Use this command inside a ticket's topic, or as a reply to a message of the ticket.")
        )
        return
    answer = await billing.canned_answer(name) if CANNED_NAME.match(name) else None
    if answer is None:
        await message.reply(
            _("There is no canned answer «{name}». /canned lists them.").format(
                name=html.escape(name[:32])
            )
        )
        return
    if ticket.status == "closed":
        await message.reply(
            _("Ticket #{id} is closed: /reopen it first, then send the answer.").format(
                id=ticket.id
            )
        )
        return
    _ticket, delivered = await relay_answer(
        message, ticket, billing, bot, settings, i18n, text=answer.text
    )
    text = _("📎 Canned answer «{name}» sent to the customer.").format(name=answer.name)
    await message.reply(text + ("\n" + blocked_text() if not delivered else ""))


def register(router: Router, staff_member: Any, in_ticket: Any) -> None:
    """Into the staff commands' router (its filters: the staff group, a staff command)."""
    router.message.register(cmd_take, Command("take"), staff_member, in_ticket)
    router.message.register(cmd_queue, Command("queue"), staff_member)
    router.message.register(cmd_canned, Command("canned"), staff_member)
