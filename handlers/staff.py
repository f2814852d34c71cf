"""The staff group (STAFF_CHAT_ID): tickets appear there, staff answer in a ticket's topic (or by
replying to its messages where the group is not a forum), and staff commands.

Who is staff, the texts for the group and posting into it live in handlers/desk.py. Each staff
command is one handler with its declared filters (`Command`, `staff_member` / `is_admin`,
`in_ticket`); a staff command that none of them takes is answered with the refusal that fits.
Money and company approval are for ADMIN_IDS only. /verify is limited per customer
(VERIFY_MAX_ATTEMPTS within VERIFY_WINDOW_MINUTES). Messages in the staff group that belong to
no ticket are ignored, so the bot never spams the group. Texts for staff use DEFAULT_LANGUAGE;
what reaches a customer uses the customer's language.
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramAPIError
from aiogram.filters import Command, CommandObject
from aiogram.types import ChatMemberUpdated, Message, TelegramObject
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import money
from handlers.desk import (
    MEMBERSHIP_TTL,
    STAFF_STATUSES,
    attachments_of,
    blocked_text,
    in_staff_chat,
    is_admin,
    is_staff,
    make_desk,
    post_to_staff,
    push_to_customer,
    staff_locale,
    staff_name,
    staff_roster,
    status_of,
    summary_text,
    ticket_of,
    verify_limit_notice,
    verify_refused_text,
)
from keyboards.tickets import answer_kb, open_ticket_kb
from services.billing import Billing, BillingGateway, per_call
from services.contracts.common import Account
from services.contracts.tickets import TEXT_MAX, Ticket
from services.errors import AlreadyDone, InsufficientFunds, ValidationFailed
from services.money import parse_amount

log = logging.getLogger(__name__)

TICKET_COMMANDS = ("close", "reopen", "info", "verify", "note")
ADMIN_COMMANDS = ("credit", "debit", "approve_company")
STAFF_COMMANDS = TICKET_COMMANDS + ADMIN_COMMANDS
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


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


# ---- staff answers in a ticket ------------------------------------------------------------------
async def in_ticket(message: Message, billing: Billing) -> dict[str, Ticket] | bool:
    """Filter: the message belongs to a ticket (injected as `ticket`). Other messages of the
    staff group fall through to later routers and end ignored, never answered."""
    ticket = await ticket_of(message, billing)
    return {"ticket": ticket} if ticket is not None else False


async def staff_message(
    message: Message,
    ticket: Ticket,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
    dispatcher: Dispatcher,
) -> None:
    """A staff answer in a ticket's topic (or a reply to a ticket message) → the customer."""
    if not await is_staff(message, bot, settings, dispatcher):
        return  # an outsider in a ticket topic: stay silent
    with staff_locale(i18n, settings):
        text = message.text or message.caption or ""
        attachments = attachments_of(message)
        if not text.strip() and not attachments:
            await message.reply(
                _("Only text, photos and documents reach the customer; this was not sent.")
            )
            return
        if len(text) > TEXT_MAX:
            await message.reply(
                _("Too long: at most {max} characters reach the customer. Not sent.").format(
                    max=TEXT_MAX
                )
            )
            return
        user_id = message.from_user.id if message.from_user else 0
        ticket = await billing.add_staff_message(
            ticket.id, user_id, staff_name(message), text, attachments
        )
        await billing.link_staff_message(message.chat.id, message.message_id, ticket.id)

    def build() -> str:
        head = _("💬 <b>Support</b> answered in ticket #{id} «{subject}»:").format(
            id=ticket.id, subject=html.escape(ticket.subject)
        )
        return head + ("\n\n" + html.escape(text) if text.strip() else "")

    delivered = await push_to_customer(
        bot, billing, settings, i18n, ticket, build, lambda: answer_kb(ticket.id), attachments
    )
    if not delivered:
        with staff_locale(i18n, settings):
            await message.reply(blocked_text())


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
async def cmd_close(
    message: Message,
    ticket: Ticket,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
    try:
        ticket = await billing.staff_close_ticket(ticket.id)
    except AlreadyDone:
        await message.reply(_("Ticket #{id} is already closed.").format(id=ticket.id))
        return
    days = settings.ticket_reopen_days

    def build() -> str:
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

    delivered = await push_to_customer(
        bot, billing, settings, i18n, ticket, build, lambda: open_ticket_kb(ticket.id)
    )
    text = _("✅ Ticket #{id} is closed.").format(id=ticket.id)
    text += "\n" + (
        _("The customer was notified.") if delivered else _("⚠️ The customer has blocked the bot.")
    )
    await message.reply(text)


async def cmd_reopen(
    message: Message,
    ticket: Ticket,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
    try:
        ticket = await billing.staff_reopen_ticket(ticket.id)
    except AlreadyDone:
        await message.reply(_("Ticket #{id} is not closed.").format(id=ticket.id))
        return

    def build() -> str:
        return _("🔄 Support reopened your ticket #{id} «{subject}».").format(
            id=ticket.id, subject=html.escape(ticket.subject)
        )

    delivered = await push_to_customer(
        bot, billing, settings, i18n, ticket, build, lambda: answer_kb(ticket.id)
    )
    text = _("🔄 Ticket #{id} is open again.").format(id=ticket.id)
    if not delivered:
        text += "\n" + _("⚠️ The customer has blocked the bot.")
    await message.reply(text)


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


async def _account_arg(message: Message, billing: Billing, reference: str) -> Account | None:
    account_id = await billing.staff_find_account(reference)
    if account_id is None:
        await message.reply(
            _("Account {reference} not found.").format(reference=html.escape(reference))
        )
        return None
    return await billing.get_account(account_id)


async def _adjust_args(
    message: Message, billing: Billing, name: str, args: str | None
) -> tuple[Account, int, str] | None:
    """The account, amount and reason of /credit or /debit; None once the problem is answered."""
    parts = (args or "").split(maxsplit=2)
    if len(parts) < 3:
        await message.reply(
            _("Usage: /{command} &lt;account&gt; &lt;amount&gt; &lt;reason&gt;").format(
                command=name
            )
        )
        return None
    reference, amount_text, reason = parts
    account = await _account_arg(message, billing, reference)
    if account is None:
        return None
    try:
        amount = parse_amount(amount_text, account.base_currency)
    except ValidationFailed:
        await message.reply(_("Invalid amount: {amount}.").format(amount=html.escape(amount_text)))
        return None
    return account, amount, reason


async def cmd_adjust(message: Message, command: CommandObject, billing: Billing) -> None:
    """/credit|/debit <account> <amount> <reason>: a manual ledger line, recorded with its
    author; the message id keys it, so a redelivered update changes nothing."""
    name = command.command.lower()
    parsed = await _adjust_args(message, billing, name, command.args)
    if parsed is None:
        return
    account, amount, reason = parsed
    user_id = message.from_user.id if message.from_user else 0
    post = billing.credit if name == "credit" else billing.debit
    try:
        line = await post(
            account.id,
            amount,
            kind="adjustment",
            description=reason,
            reference=f"staff:{user_id}",
            idempotency_key=f"staff:{message.chat.id}:{message.message_id}",
            actor=f"tg:{user_id}",
        )
    except InsufficientFunds:
        await message.reply(
            _("Not enough money on account #{id}: the balance is {balance}.").format(
                id=account.id, balance=money(account.balance_minor, account.base_currency)
            )
        )
        return
    if line is None:  # the same message delivered again
        await message.reply(_("This adjustment is already recorded; nothing was changed."))
        return
    account = await billing.get_account(account.id)
    text = (
        _("✅ Credited {amount} to account #{id} ({login}). Balance: {balance}.")
        if name == "credit"
        else _("✅ Debited {amount} from account #{id} ({login}). Balance: {balance}.")
    )
    await message.reply(
        text.format(
            amount=money(amount, account.base_currency),
            id=account.id,
            login=html.escape(account.login),
            balance=money(account.balance_minor, account.base_currency),
        )
    )


async def cmd_approve_company(message: Message, command: CommandObject, billing: Billing) -> None:
    reference = (command.args or "").strip()
    if not reference:
        await message.reply(_("Usage: /approve_company &lt;account&gt;"))
        return
    account = await _account_arg(message, billing, reference)
    if account is None:
        return
    await billing.approve_company(account.id)
    await message.reply(
        _(
            "✅ The company profile of account #{id} ({login}) is approved: payments are unblocked."
        ).format(id=account.id, login=html.escape(account.login))
    )


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
    router.message.register(cmd_adjust, Command("credit", "debit"), is_admin)
    router.message.register(cmd_approve_company, Command("approve_company"), is_admin)
    router.message.register(refuse_staff_command)
    return router


def create_router() -> Router:
    router = Router(name="staff")
    # Registering these makes `chat_member` and `my_chat_member` part of the allowed_updates
    # that polling and setWebhook ask for (Dispatcher.resolve_used_update_types).
    router.chat_member.register(staff_member_changed, in_staff_chat)
    router.my_chat_member.register(bot_membership_changed, in_staff_chat)
    router.message.register(
        staff_message,
        in_staff_chat,
        ~F.text.startswith("/"),
        ~F.caption.startswith("/"),
        in_ticket,
    )
    router.message.register(
        staff_command_elsewhere, F.chat.type == "private", Command(*STAFF_COMMANDS)
    )
    router.include_router(staff_commands_router())
    return router
