"""The staff desk: the glue between the customer's side and the staff group (STAFF_CHAT_ID),
used by the staff router (handlers/staff.py), by tickets (handlers/tickets.py) and by payments
(handlers/payments.py). It holds the texts the staff group shows (in DEFAULT_LANGUAGE), posting a
ticket and its messages into the group (a failure there never loses a ticket), sending to a
ticket's customer in their language, finding the ticket a staff-group message belongs to, and
who is staff.

Staff = the staff group's administrators and creator (getChatMember, cached briefly in
`StaffRoster` and kept current by `chat_member` updates), STAFF_IDS and ADMIN_IDS; plain members
are not staff. Admins = ADMIN_IDS.
"""

from __future__ import annotations

import html
import logging
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager

from aiogram import Bot, Dispatcher
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError
from aiogram.types import ChatMember, ChatMemberUpdated, InlineKeyboardMarkup, Message
from aiogram.utils.i18n import I18n, ngettext
from aiogram.utils.i18n import gettext as _

from bot.config import Settings
from handlers.common import date, money
from keyboards.orders import status_text as order_status_text
from keyboards.tickets import department_name
from services import support
from services.billing import Billing
from services.contracts.common import Account
from services.contracts.staff import CodeWordAttempt
from services.contracts.store import CustomerCopy
from services.contracts.tickets import AccountSummary, Attachment, Ticket
from services.languages import pick_language
from services.support import StaffDesk

log = logging.getLogger(__name__)

STAFF_STATUSES = ("creator", "administrator")
MEMBERSHIP_TTL = 60.0  # seconds a getChatMember answer is trusted without a chat_member update


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
        money_line(summary),
    ]
    text = "\n".join(lines)
    if first is not None and first.text:
        text += "\n\n" + html.escape(first.text)
    if first is not None and first.attachments:
        text += "\n" + files_line(len(first.attachments))
    return text


def money_line(summary: AccountSummary) -> str:
    """«Unpaid invoices: 2 (€15.00) · Last payment: €25.00, Dec 1, 2026»."""
    unpaid = (
        _("Unpaid invoices: {count} ({amount})").format(
            count=summary.unpaid_invoices, amount=money(summary.unpaid_minor, summary.currency)
        )
        if summary.unpaid_invoices
        else _("Unpaid invoices: none")
    )
    last = summary.last_payment
    paid = (
        _("Last payment: {amount}, {date}").format(
            amount=money(last.amount_minor, last.currency), date=date(last.at)
        )
        if last
        else _("Last payment: none")
    )
    return f"{unpaid} · {paid}"


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


def company_line(summary: AccountSummary, name: str) -> str:
    if summary.profile_type != "company":
        return _("Profile: individual")
    if summary.company_verified:
        return _("Profile: company {name} (verified)").format(name=name)
    return _("Profile: company {name} (not verified)").format(name=name)


def summary_text(summary: AccountSummary) -> str:
    def value(item: str | None) -> str:
        return html.escape(item) if item else "—"

    name = " ".join(filter(None, [summary.first_name, summary.last_name]))
    lines = [
        _("👤 <b>Account #{id}</b> <code>{login}</code>").format(
            id=summary.account_id, login=html.escape(summary.login)
        ),
        customer_line(summary),
        _("Name: {name}").format(name=value(name)),
        # Whole lines, not shared status words: Russian agrees them with each noun.
        (
            _("E-mail: {email} (confirmed)")
            if summary.email_confirmed
            else _("E-mail: {email} (not confirmed)")
        ).format(email=value(summary.email)),
        (
            _("Phone: {phone} (confirmed)")
            if summary.phone_verified
            else _("Phone: {phone} (not confirmed)")
        ).format(phone=value(summary.phone)),
        _("Country: {country}").format(country=value(summary.country)),
        company_line(summary, value(summary.company_name)),
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


async def sync_topic(
    bot: Bot, billing: Billing, settings: Settings, i18n: I18n, ticket: Ticket
) -> None:
    """The ticket's topic shows its status now (after a staff answer, close, reopen, /take)."""
    desk = make_desk(bot, billing, settings, i18n)
    if desk is None:
        return
    try:
        await desk.sync_topic(ticket)
    except Exception:  # cosmetic: never fails the action that changed the ticket
        log.warning("could not update the topic of ticket %s", ticket.id, exc_info=True)


async def push_to_customer(
    bot: Bot,
    billing: Billing,
    settings: Settings,
    i18n: I18n,
    ticket: Ticket,
    build: Callable[[], str],
    markup: Callable[[], InlineKeyboardMarkup] | None,
    attachments: Sequence[Attachment] = (),
    *,
    source: Message | None = None,
) -> bool:
    """Send to the ticket's customer in their language; False when they blocked the bot. The
    messages sent are linked to the ticket (a reply to them reaches it) and, with `source` (the
    staff-group message relayed), to that message (an edit of it is relayed)."""
    account = await billing.get_account(ticket.account_id)
    if account.chat_id is None:
        return False
    with i18n.context(), i18n.use_locale(customer_language(account, ticket, settings)):
        text = build()
        keyboard = markup() if markup else None
    try:
        sent = await support.send_content(bot, account.chat_id, text, attachments, markup=keyboard)
    except TelegramForbiddenError:
        await billing.set_chat_reachable(account.chat_id, False)
        return False
    for index, message in enumerate(sent):
        copied = source if index == 0 else None  # the text is in the first message
        content = "text" if message.text is not None else "caption"
        await billing.link_customer_message(
            CustomerCopy(
                account.chat_id,
                message.message_id,
                ticket.id,
                content,
                staff_chat_id=copied.chat.id if copied else None,
                staff_message_id=copied.message_id if copied else None,
            )
        )
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
    if message.from_user is None:
        return False
    return await is_staff_user(message.from_user.id, bot, settings, dispatcher)


async def is_staff_user(user_id: int, bot: Bot, settings: Settings, dispatcher: Dispatcher) -> bool:
    """The user is staff (a button press in the staff group: the presser, never anonymous)."""
    if user_id in settings.admin_ids or user_id in settings.staff_ids:
        return True
    if settings.staff_chat_id is None:
        return False
    roster = staff_roster(dispatcher)
    key = (settings.staff_chat_id, user_id)
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


# ---- the ticket of a staff-group message -------------------------------------------------------
async def ticket_of(message: Message, billing: Billing) -> Ticket | None:
    """The ticket a staff-group message belongs to: its topic, or the message it replies to."""
    chat_id = message.chat.id
    ticket_id = None
    if message.message_thread_id and message.is_topic_message:
        ticket_id = await billing.ticket_id_of_thread(chat_id, message.message_thread_id)
    reply = message.reply_to_message
    if ticket_id is None and reply is not None and reply.forum_topic_created is None:
        ticket_id = await billing.ticket_id_of_staff_message(chat_id, reply.message_id)
    return None if ticket_id is None else await billing.staff_get_ticket(ticket_id)


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
