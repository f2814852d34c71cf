"""The staff group (STAFF_CHAT_ID): tickets appear there, staff answer in a ticket's topic (or by
replying to its messages where the group is not a forum), and staff commands.

This module composes the section: membership of the staff group (here), staff answers, the
question about a message in a closed ticket and relayed edits (handlers/staff_relay.py), the
commands (handlers/staff_commands.py, staff_tools.py, staff_admin.py) and the reminder job
(handlers/staff_reminders.py).

Who is staff, the texts for the group and posting into it live in handlers/desk.py. Each staff
command is one handler with its declared filters (`Command`, `staff_member` / `is_admin`,
`in_ticket`); a staff command that none of them takes is answered with the refusal that fits.
Money and company approval are for ADMIN_IDS only. /verify is limited per customer
(VERIFY_MAX_ATTEMPTS within VERIFY_WINDOW_MINUTES). Messages in the staff group that belong to
no ticket are ignored, so the bot never spams the group. Texts for staff use DEFAULT_LANGUAGE;
what reaches a customer uses the customer's language.
"""

from __future__ import annotations

import logging

from aiogram import Dispatcher, F, Router
from aiogram.filters import Command
from aiogram.types import ChatMemberUpdated

from handlers.desk import MEMBERSHIP_TTL, STAFF_STATUSES, in_staff_chat, staff_roster, status_of
from handlers.staff_commands import PRIVATE_REFUSED, staff_command_elsewhere, staff_commands_router
from handlers.staff_relay import (
    closed_ticket_choice,
    from_staff,
    in_ticket,
    relayed,
    staff_edit,
    staff_message,
)
from handlers.staff_reminders import remind_unanswered
from keyboards.staff import ClosedTicketCb

__all__ = ["create_router", "remind_unanswered"]

log = logging.getLogger(__name__)


# ---- membership of the staff group ------------------------------------------------------------
async def staff_member_changed(event: ChatMemberUpdated, dispatcher: Dispatcher) -> None:
    """A member of the staff group was promoted, demoted, restricted, added or removed (Telegram
    sends `chat_member` only to a bot that is an administrator of the group)."""
    status = status_of(event.new_chat_member)
    user_id = event.new_chat_member.user.id
    staff_roster(dispatcher).changed((event.chat.id, user_id), status in STAFF_STATUSES)
    log.info("Staff group member %s is now %s", user_id, status)


async def bot_membership_changed(event: ChatMemberUpdated, dispatcher: Dispatcher) -> None:
    """The bot's own status in the staff group changed: every answer is asked for again, and
    without admin rights the bot no longer hears of members' changes."""
    staff_roster(dispatcher).forget_chat(event.chat.id)
    status = status_of(event.new_chat_member)
    if status != "administrator":
        log.warning(
            "The bot is %s in the staff group, not an administrator: it no longer receives "
            "membership changes, so staff rights are re-checked only every %d s",
            status,
            MEMBERSHIP_TTL,
        )


def create_router() -> Router:
    router = Router(name="staff")
    # Registering these makes `chat_member`, `my_chat_member` and `edited_message` part of the
    # allowed_updates that polling and setWebhook ask for (Dispatcher.resolve_used_update_types).
    router.chat_member.register(staff_member_changed, in_staff_chat)
    router.my_chat_member.register(bot_membership_changed, in_staff_chat)
    not_command = ~F.text.startswith("/") & ~F.caption.startswith("/")
    router.message.register(staff_message, in_staff_chat, not_command, in_ticket, from_staff)
    router.edited_message.register(staff_edit, in_staff_chat, not_command, relayed, from_staff)
    router.callback_query.register(closed_ticket_choice, ClosedTicketCb.filter())
    router.message.register(
        staff_command_elsewhere, F.chat.type == "private", Command(*PRIVATE_REFUSED)
    )
    router.include_router(staff_commands_router())
    return router
