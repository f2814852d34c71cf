"""The staff group (STAFF_CHAT_ID): tickets appear there, staff answer in a ticket's topic (or by
replying to its messages where the group is not a forum), and staff commands.

Staff = the staff group's administrators and creator (getChatMember, cached briefly and kept
current by `chat_member` updates), STAFF_IDS and ADMIN_IDS; plain members are not staff. Money
and company approval are for ADMIN_IDS only. /verify is limited per customer
(VERIFY_MAX_ATTEMPTS within VERIFY_WINDOW_MINUTES). Messages in the staff group that belong to
no ticket are ignored, so the bot never spams the group. Texts for staff use DEFAULT_LANGUAGE;
what reaches a customer uses the customer's language.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.filters import Command, CommandObject
from aiogram.types import ChatMember, ChatMemberUpdated, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import date, money
from keyboards.orders import status_text as order_status_text
from keyboards.tickets import answer_kb, department_name, open_ticket_kb
from services import support
from services.billing import Billing, BillingGateway, per_call
from services.contracts.common import Account
from services.contracts.staff import CodeWordAttempt
from services.contracts.tickets import TEXT_MAX, AccountSummary, Attachment, Ticket
from services.errors import AlreadyDone, InsufficientFunds, ValidationFailed
from services.languages import pick_language
from services.money import parse_amount
from services.support import StaffDesk

log = logging.getLogger(__name__)

TICKET_COMMANDS = ("close", "reopen", "info", "verify", "note")
ADMIN_COMMANDS = ("credit", "debit", "approve_company")
STAFF_COMMANDS = TICKET_COMMANDS + ADMIN_COMMANDS
STAFF_STATUSES = ("creator", "administrator")
MEMBERSHIP_TTL = 60.0  # seconds a getChatMember answer is trusted without a chat_member update
LOCALES_DIR = Path(__file__).resolve().parent.parent / "locales"


# ---- locale helpers --------------------------------------------------------------------------
@contextmanager
def staff_locale(i18n: I18n, settings: Settings) -> Iterator[None]:
    with i18n.context(), i18n.use_locale(settings.default_language):
        yield


def customer_language(account: Account, ticket: Ticket, settings: Settings) -> str:
    return pick_language(account.language, ticket.language, settings.default_language)


# ---- texts for the staff group ---------------------------------------------------------------
def customer_line(summary: AccountSummary) -> str:
    name = html.escape(summary.telegram_name or summary.login)
    username = f" @{html.escape(summary.telegram_username)}" if summary.telegram_username else ""
    return _("Customer: {name}{username} (Telegram id {telegram_id})").format(
        name=name, username=username, telegram_id=summary.telegram_id or "—"
    )


async def header_text(billing: Billing, ticket: Ticket) -> str:
    summary = await billing.account_summary(ticket.account_id)
    messages = await billing.staff_ticket_messages(ticket.id)
    first = next((m for m in messages if m.author == "customer"), None)
    lines = [
        _("🎫 <b>Ticket #{id}</b> · {subject}").format(
            id=ticket.id, subject=html.escape(ticket.subject)
        ),
        _("Department: {department}").format(department=department_name(ticket.department)),
        customer_line(summary),
        _("Account: #{id} <code>{login}</code>").format(
            id=summary.account_id, login=html.escape(summary.login)
        ),
        _("Balance: {balance} · Active orders: {orders}").format(
            balance=money(summary.balance_minor, summary.currency), orders=summary.active_orders
        ),
    ]
    text = "\n".join(lines)
    if first is not None and first.text:
        text += "\n\n" + html.escape(first.text)
    if first is not None and first.attachments:
        text += "\n" + files_line(len(first.attachments))
    return text


def files_line(count: int) -> str:
    return ngettext("📎 {count} file", "📎 {count} files", count).format(count=count)


def recreated_note() -> str:
    return _("♻️ The topic of this ticket was deleted, so it was created again.")


def customer_message_text(ticket: Ticket, text: str) -> str:
    head = _("👤 <b>Customer</b> · ticket #{id}:").format(id=ticket.id)
    return head + ("\n" + html.escape(text) if text else "")


def blocked_text() -> str:
    return _(
        "⚠️ The customer has blocked the bot: the message is saved in the ticket but was not "
        "delivered."
    )


def summary_text(summary: AccountSummary) -> str:
    def value(item: str | None) -> str:
        return html.escape(item) if item else "—"

    name = " ".join(filter(None, [summary.first_name, summary.last_name]))
    yes, no = _("confirmed"), _("not confirmed")
    lines = [
        _("👤 <b>Account #{id}</b> <code>{login}</code>").format(
            id=summary.account_id, login=html.escape(summary.login)
        ),
        customer_line(summary),
        _("Name: {name}").format(name=value(name)),
        _("E-mail: {email} ({state})").format(
            email=value(summary.email), state=yes if summary.email_confirmed else no
        ),
        _("Phone: {phone} ({state})").format(
            phone=value(summary.phone), state=yes if summary.phone_verified else no
        ),
        _("Country: {country}").format(country=value(summary.country)),
        _("Profile: company {name} ({state})").format(
            name=value(summary.company_name),
            state=_("verified") if summary.company_verified else _("not verified"),
        )
        if summary.profile_type == "company"
        else _("Profile: individual"),
        _("Balance: {balance}").format(balance=money(summary.balance_minor, summary.currency)),
    ]
    if summary.unreachable:
        lines.append(_("⚠️ The customer has blocked the bot."))
    if summary.orders:
        lines.append(_("Orders:"))
        for order in summary.orders[:20]:
            lines.append(
                _("• #{id} {tariff} — {status}, paid until {date}").format(
                    id=order.id,
                    tariff=html.escape(order.tariff_name),
                    status=order_status_text(order.status),
                    date=date(order.paid_until),
                )
            )
    else:
        lines.append(_("Orders: none"))
    return "\n".join(lines)


# ---- the staff desk of one update or job -------------------------------------------------------
def make_desk(bot: Bot, billing: Billing, settings: Settings, i18n: I18n) -> StaffDesk | None:
    if settings.staff_chat_id is None:
        return None

    async def header(ticket: Ticket) -> str:
        with staff_locale(i18n, settings):
            return await header_text(billing, ticket)

    def note() -> str:
        with staff_locale(i18n, settings):
            return recreated_note()

    return StaffDesk(bot, billing, settings.staff_chat_id, header, note)


async def open_in_staff_group(
    bot: Bot,
    billing: Billing,
    settings: Settings,
    i18n: I18n,
    ticket: Ticket,
    attachments: Sequence[Attachment],
) -> None:
    """A new ticket appears in the staff group; a failure there never loses the ticket (the
    next message of the ticket tries again)."""
    desk = make_desk(bot, billing, settings, i18n)
    if desk is None:
        return
    try:
        await desk.open(ticket, attachments)
    except Exception:  # the ticket is saved; the staff group gets it with the next message
        log.warning("could not post ticket %s to the staff group", ticket.id, exc_info=True)


async def post_to_staff(
    bot: Bot,
    billing: Billing,
    settings: Settings,
    i18n: I18n,
    ticket: Ticket,
    text: str,
    attachments: Sequence[Attachment] = (),
) -> None:
    """Post into the ticket's topic (built in DEFAULT_LANGUAGE by the caller via `staff_text`)."""
    desk = make_desk(bot, billing, settings, i18n)
    if desk is None:
        return
    try:
        await desk.post(ticket, text, attachments)
    except Exception:  # the message is saved in the ticket either way
        log.warning("could not post to the staff topic of ticket %s", ticket.id, exc_info=True)


async def push_to_customer(
    bot: Bot,
    billing: Billing,
    settings: Settings,
    i18n: I18n,
    ticket: Ticket,
    build: Callable[[], str],
    markup: Callable[[], InlineKeyboardMarkup] | None,
    attachments: Sequence[Attachment] = (),
) -> bool:
    """Send to the ticket's customer in their language; False when they blocked the bot."""
    account = await billing.get_account(ticket.account_id)
    if account.chat_id is None:
        return False
    with i18n.context(), i18n.use_locale(customer_language(account, ticket, settings)):
        text = build()
        keyboard = markup() if markup else None
    try:
        await support.send_content(bot, account.chat_id, text, attachments, markup=keyboard)
    except TelegramForbiddenError:
        await billing.set_chat_reachable(account.chat_id, False)
        return False
    return True


# ---- who is staff -------------------------------------------------------------------------------
def in_staff_chat(event: Message | ChatMemberUpdated, settings: Settings) -> bool:
    return settings.staff_chat_id is not None and event.chat.id == settings.staff_chat_id


def is_admin(message: Message, settings: Settings) -> bool:
    return message.from_user is not None and message.from_user.id in settings.admin_ids


def status_of(member: ChatMember) -> str:
    status = getattr(member, "status")  # every kind of ChatMember has one  # noqa: B009
    return status.value if hasattr(status, "value") else str(status)


class StaffRoster:
    """Which users of the staff group are staff (its administrators and creator): getChatMember
    answers, trusted for `ttl` seconds, and what `chat_member` updates said since. An update
    replaces the answer at once (a promoted member is staff, a demoted or removed admin is not),
    and a getChatMember answer that was in flight across an update never overwrites it. With
    several bot instances only the one that received the update knows at once; the others ask
    again within `ttl`."""

    def __init__(self, ttl: float = MEMBERSHIP_TTL, clock: Callable[[], float] = time.monotonic):
        self.ttl, self.clock = ttl, clock
        self._answers: dict[tuple[int, int], tuple[bool, float]] = {}
        self._changes: dict[tuple[int, int], int] = {}  # updates seen per member

    def known(self, key: tuple[int, int]) -> bool | None:
        answer = self._answers.get(key)
        if answer is None or answer[1] <= self.clock():
            return None
        return answer[0]

    def version(self, key: tuple[int, int]) -> int:
        return self._changes.get(key, 0)

    def answered(self, key: tuple[int, int], allowed: bool, version: int) -> bool:
        """Store a getChatMember answer asked at `version`; an update that came meanwhile wins."""
        if self.version(key) != version:
            known = self.known(key)
            return allowed if known is None else known
        self._answers[key] = (allowed, self.clock() + self.ttl)
        return allowed

    def changed(self, key: tuple[int, int], allowed: bool) -> None:
        self._changes[key] = self.version(key) + 1
        self._answers[key] = (allowed, self.clock() + self.ttl)

    def forget_chat(self, chat_id: int) -> None:
        for key in [k for k in self._answers if k[0] == chat_id]:
            del self._answers[key]
        for key in [k for k in self._changes if k[0] == chat_id]:
            self._changes[key] += 1


def staff_roster(dispatcher: Dispatcher) -> StaffRoster:
    roster: StaffRoster = dispatcher.workflow_data.setdefault("staff_roster", StaffRoster())
    return roster


async def is_staff(message: Message, bot: Bot, settings: Settings, dispatcher: Dispatcher) -> bool:
    if is_admin(message, settings):
        return True
    if message.sender_chat is not None:  # an anonymous admin of the staff group itself
        return message.sender_chat.id == settings.staff_chat_id
    if message.from_user is None or settings.staff_chat_id is None:
        return False
    if message.from_user.id in settings.staff_ids:
        return True
    roster = staff_roster(dispatcher)
    key = (settings.staff_chat_id, message.from_user.id)
    known = roster.known(key)
    if known is not None:
        return known
    version = roster.version(key)
    try:
        member = await bot.get_chat_member(settings.staff_chat_id, key[1])
    except TelegramAPIError:
        log.warning("getChatMember failed for %s", key, exc_info=True)
        return False
    return roster.answered(key, status_of(member) in STAFF_STATUSES, version)


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


async def ticket_of(message: Message, billing: Billing) -> Ticket | None:
    """The ticket a staff-group message belongs to: its topic, or the message it replies to."""
    chat_id = message.chat.id
    if message.message_thread_id and message.is_topic_message:
        ticket = await billing.find_ticket_by_thread(chat_id, message.message_thread_id)
        if ticket is not None:
            return ticket
    reply = message.reply_to_message
    if reply is not None and reply.forum_topic_created is None:
        return await billing.find_ticket_by_staff_message(chat_id, reply.message_id)
    return None


def attachments_of(message: Message) -> list[Attachment]:
    if message.photo:
        return [Attachment("photo", message.photo[-1].file_id)]
    if message.document:
        return [Attachment("document", message.document.file_id)]
    return []


def staff_name(message: Message) -> str:
    if message.from_user is not None and message.sender_chat is None:
        return message.from_user.full_name
    return message.author_signature or _("Support")


# ---- handlers -----------------------------------------------------------------------------------
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


async def staff_command(
    message: Message,
    command: CommandObject,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
    dispatcher: Dispatcher,
) -> None:
    name = command.command.lower()
    with staff_locale(i18n, settings):
        if not await is_staff(message, bot, settings, dispatcher):
            await message.reply(_("⛔ Only support staff can use this command."))
            return
        if name in ADMIN_COMMANDS:
            if not is_admin(message, settings):
                await message.reply(_("⛔ Only administrators can use this command."))
                return
            await ADMIN_HANDLERS[name](message, command, billing, bot, settings, i18n)
            return
        ticket = await ticket_of(message, billing)
        if ticket is None:
            await message.reply(
                _(
                    "Use this command inside a ticket's topic, or as a reply to a message "
                    "of the ticket."
                )
            )
            return
        await TICKET_HANDLERS[name](message, command, ticket, billing, bot, settings, i18n)


async def cmd_close(
    message: Message,
    command: CommandObject,
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
    command: CommandObject,
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


async def cmd_info(
    message: Message,
    command: CommandObject,
    ticket: Ticket,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
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


def minutes_text(minutes: int) -> str:
    """«{n} minutes» as a duration («per 60 minutes», «in 5 minutes»)."""
    return ngettext("{count} minute", "{count} minutes", minutes).format(count=minutes)


def verify_refused_text(ticket: Ticket, attempt: CodeWordAttempt, settings: Settings) -> str:
    limit = settings.verify_max_attempts
    wait = max(1, -(-attempt.retry_after_seconds // 60))
    refused = ngettext(
        "⛔ Not checked (ticket #{id}): a customer's code word can be checked at most {limit} "
        "time per {window}.",
        "⛔ Not checked (ticket #{id}): a customer's code word can be checked at most {limit} "
        "times per {window}.",
        limit,
    ).format(id=ticket.id, limit=limit, window=minutes_text(settings.verify_window_minutes))
    return (
        refused + "\n" + _("The next check is possible in {wait}.").format(wait=minutes_text(wait))
    )


def verify_limit_notice(ticket: Ticket, settings: Settings) -> str:
    limit = settings.verify_max_attempts
    return ngettext(
        "🚨 The code word of account #{account} (ticket #{id}) was checked {limit} time within "
        "{window}; further checks are refused for now. If that was not your team, someone may "
        "be trying to guess it.",
        "🚨 The code word of account #{account} (ticket #{id}) was checked {limit} times within "
        "{window}; further checks are refused for now. If that was not your team, someone may "
        "be trying to guess it.",
        limit,
    ).format(
        account=ticket.account_id,
        id=ticket.id,
        limit=limit,
        window=minutes_text(settings.verify_window_minutes),
    )


async def cmd_note(
    message: Message,
    command: CommandObject,
    ticket: Ticket,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
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


async def cmd_adjust(
    message: Message,
    command: CommandObject,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
    """/credit|/debit <account> <amount> <reason>: a manual ledger line, recorded with its
    author; the message id keys it, so a redelivered update changes nothing."""
    name = command.command.lower()
    parts = (command.args or "").split(maxsplit=2)
    if len(parts) < 3:
        await message.reply(
            _("Usage: /{command} &lt;account&gt; &lt;amount&gt; &lt;reason&gt;").format(
                command=name
            )
        )
        return
    reference, amount_text, reason = parts
    account = await _account_arg(message, billing, reference)
    if account is None:
        return
    try:
        amount = parse_amount(amount_text, account.base_currency)
    except ValidationFailed:
        await message.reply(_("Invalid amount: {amount}.").format(amount=html.escape(amount_text)))
        return
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


async def cmd_approve_company(
    message: Message,
    command: CommandObject,
    billing: Billing,
    bot: Bot,
    settings: Settings,
    i18n: I18n,
) -> None:
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


TICKET_HANDLERS: dict[str, Any] = {
    "close": cmd_close,
    "reopen": cmd_reopen,
    "info": cmd_info,
    "verify": cmd_verify,
    "note": cmd_note,
}
ADMIN_HANDLERS: dict[str, Any] = {
    "credit": cmd_adjust,
    "debit": cmd_adjust,
    "approve_company": cmd_approve_company,
}


async def staff_command_elsewhere(message: Message) -> None:
    await message.answer(_("This command is for support staff and works only in the staff group."))


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
        if await billing.mark_ticket_reminded(ticket.id, now):
            posted += 1
    return posted


def create_router() -> Router:
    router = Router(name="staff")
    # Registering these makes `chat_member` and `my_chat_member` part of the allowed_updates
    # that polling and setWebhook ask for (Dispatcher.resolve_used_update_types).
    router.chat_member.register(staff_member_changed, in_staff_chat)
    router.my_chat_member.register(bot_membership_changed, in_staff_chat)
    router.message.register(staff_command, in_staff_chat, Command(*STAFF_COMMANDS))
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
    return router
