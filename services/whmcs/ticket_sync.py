"""Replies written in WHMCS's admin area (not through the bot) reach the customer in Telegram.

A periodic job (`ticket_sync_job`, registered by bot/scheduler.py with BILLING=whmcs, under a
job lease, every minute). One run:
1. pages over WHMCS's active tickets (GetTickets "All Active Tickets": anything not Closed)
   and keeps those of clients linked to a Telegram account;
2. skips a ticket whose `lastreply` is the one its cursor saw (adapter_state CURSOR_KIND:
   the last reply id seen and the `lastreply` of that moment);
3. reads a changed ticket (GetTicket) and takes the admin replies after the cursor;
4. then, in ONE local transaction (WHMCS was asked first, nothing network-bound inside):
   consumes the echo marks of replies the bot itself posted (staff answered in the staff
   group: the handler delivered those), queues the others to the customer through the outbox
   with the key `whmcs_reply:<ticket>:<reply id>`, and moves the cursor.

A ticket seen for the first time without a cursor (opened on the WHMCS website, or before
the bot was deployed) only gets its cursor: its history is not sent. Tickets the bot opened
get a cursor at creation, so every admin reply after the first message is delivered.
An admin reply that also closes the ticket is not seen (Closed tickets are not scanned).

Customer replies made on the WHMCS website go to the ticket's topic in the staff group (in
DEFAULT_LANGUAGE, key `whmcs_customer_reply:<ticket>:<reply id>`) when the ticket has a place
there already (the outbox cannot create a topic; the desk makes one with the ticket's next post,
the reminder for instance); those written in Telegram carry an echo mark (CUSTOMER_ECHO_KIND)
and are left alone: the handler posted them. Files attached on the website are not relayed.

Which replies are the bot's own: AddTicketReply answers no reply id, so the bot records the
fingerprint of each text before posting it (see tickets.py) and a new reply with that text
consumes one mark. An admin writing, within a week, exactly the text the bot posted for a staff
member in the same ticket would be taken for the bot's reply: harmless (the customer got it).
"""

from __future__ import annotations

import html
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from aiogram.types import InlineKeyboardMarkup
from aiogram.utils.i18n import I18n
from aiogram.utils.i18n import gettext as _

from services.billing import Billing, BillingGateway, per_call
from services.contracts.alerts import OutgoingMessage
from services.contracts.common import Account
from services.contracts.tickets import TEXT_MAX
from services.languages import pick_language
from services.whmcs import models as wm
from services.whmcs.client import WhmcsClient
from services.whmcs.errors import WhmcsAuthError, WhmcsUnavailable
from services.whmcs.gateway import WhmcsGateway
from services.whmcs.ticket_texts import (
    ALL_ACTIVE,
    CURSOR_KIND,
    CUSTOMER_ECHO_KIND,
    ECHO_KIND,
    META_KIND,
    fingerprint,
    plain_text,
    split_files_note,
)

log = logging.getLogger(__name__)

AnswerMarkup = Callable[[int], InlineKeyboardMarkup]


def answer_text(ticket_id: int, subject: str, text: str) -> str:
    """The same words as a staff answer given in the staff group (handlers/staff.py)."""
    head = _("💬 <b>Support</b> answered in ticket #{id} «{subject}»:").format(
        id=ticket_id, subject=html.escape(subject)
    )
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - 1] + "…"
    return head + ("\n\n" + html.escape(text) if text.strip() else "")


def customer_text(ticket_id: int, text: str) -> str:
    """The same words as a customer's message relayed by the bot (handlers/desk.py)."""
    head = _("👤 <b>Customer</b> · ticket #{id}:").format(id=ticket_id)
    if len(text) > TEXT_MAX:
        text = text[: TEXT_MAX - 1] + "…"
    return head + ("\n" + html.escape(text) if text else "")


class TicketReplySync:
    def __init__(
        self,
        gateway: WhmcsGateway,
        client: WhmcsClient,
        i18n: I18n,
        default_language: str,
        answer_markup: AnswerMarkup | None = None,
        staff_chat_id: int | None = None,
    ) -> None:
        self.gateway = gateway
        self.client = client
        self.local = per_call(gateway.local)
        self.i18n = i18n
        self.default_language = default_language
        self.answer_markup = answer_markup
        self.staff_chat_id = staff_chat_id
        self._accounts: dict[int, int | None] = {}

    async def run(self) -> int:
        """One pass; returns how many messages were queued."""
        queued = 0
        async for ticket in self.client.iter_tickets(status=ALL_ACTIVE):
            account_id = await self._account_of(ticket.userid)
            if account_id is None:
                continue
            try:
                queued += await self._sync_ticket(ticket, account_id)
            except Exception:  # one ticket must not stop the others; the next run tries again
                log.exception("ticket %s: WHMCS replies not synced", ticket.id)
        return queued

    async def _account_of(self, client_id: int) -> int | None:
        if client_id not in self._accounts:
            self._accounts[client_id] = await self.local.account_id_of_billing_client(client_id)
        return self._accounts[client_id]

    async def _sync_ticket(self, listed: wm.Ticket, account_id: int) -> int:
        key = str(listed.id)
        cursor = await self.local.get_adapter_state(CURSOR_KIND, key)
        if cursor is not None and cursor.get("lastreply") == str(listed.lastreply):
            return 0  # nothing changed since the last run
        ticket = await self.client.get_ticket(listed.id)  # ask WHMCS first ...
        seen = cursor.get("reply_id") if cursor else None
        last_id = max((r.reply_id for r in ticket.replies), default=0)
        new_cursor = {"reply_id": last_id, "lastreply": str(listed.lastreply)}
        fresh = [r for r in ticket.replies if isinstance(seen, int) and r.reply_id > seen]
        account = await self.local.get_account(account_id) if fresh else None
        meta = await self.local.get_adapter_state(META_KIND, key) if fresh else None
        language = pick_language(
            account.language if account else None,
            (meta or {}).get("language"),
            self.default_language,
        )
        async with self.gateway.local.transaction() as store:  # ... then write, in one go
            messages = []
            for reply in fresh:  # none at first sight: no history is sent
                message = await self._message(store, ticket, reply, account, language)
                if message is not None:
                    messages.append(message)
            queued = await store.enqueue_messages(messages) if messages else 0
            await store.put_adapter_state(CURSOR_KIND, key, new_cursor)
        return queued

    async def _message(
        self,
        store: Billing,
        ticket: wm.Ticket,
        reply: wm.TicketReply,
        account: Account | None,
        language: str,
    ) -> OutgoingMessage | None:
        """What one new reply becomes: an admin's goes to the customer, a customer's (written
        on the WHMCS website) to the ticket's topic; the bot's own are consumed, not sent."""
        plain = plain_text(reply.message)
        text, _files = split_files_note(plain)
        if reply.admin:
            if await _take_echo(store, ECHO_KIND, ticket.id, plain):
                return None  # posted by the bot: the handler delivered the staff answer
            if account is None or account.chat_id is None:
                return None
            key = f"whmcs_reply:{ticket.id}:{reply.reply_id}"
            return OutgoingMessage(
                account.chat_id, self._payload(ticket, text, language), idempotency_key=key
            )
        if await _take_echo(store, CUSTOMER_ECHO_KIND, ticket.id, plain):
            return None  # written in Telegram: the handler posted it to the staff group
        place = await store.ticket_place(ticket.id) if self.staff_chat_id else None
        if place is None or place.chat_id != self.staff_chat_id:
            return None  # no topic yet: the desk makes one with the ticket's next post
        with self.i18n.context(), self.i18n.use_locale(self.default_language):
            staff_text = customer_text(ticket.id, text)
        payload: dict[str, Any] = {"text": staff_text}
        if place.thread_id:
            payload["message_thread_id"] = place.thread_id
        key = f"whmcs_customer_reply:{ticket.id}:{reply.reply_id}"
        return OutgoingMessage(place.chat_id, payload, idempotency_key=key)

    def _payload(self, ticket: wm.Ticket, text: str, language: str) -> dict[str, Any]:
        with self.i18n.context(), self.i18n.use_locale(language):
            payload: dict[str, Any] = {
                "text": answer_text(ticket.id, plain_text(ticket.subject), text)
            }
            markup = self.answer_markup(ticket.id) if self.answer_markup else None
            if markup is not None and markup.inline_keyboard:
                payload["reply_markup"] = markup.model_dump(mode="json", exclude_none=True)
        return payload


async def _take_echo(store: Billing, kind: str, ticket_id: int, text: str) -> bool:
    """Consume one echo mark of this text (the bot posted it); False when there is none."""
    key = f"{ticket_id}:{fingerprint(text)}"
    mark = await store.take_adapter_state(kind, key)
    if mark is None:
        return False
    count = mark.get("count")
    if isinstance(count, int) and count > 1:
        await store.put_adapter_state(kind, key, {"count": count - 1})
    return True


async def sync_ticket_replies(
    gateway: BillingGateway,
    i18n: I18n,
    default_language: str,
    answer_markup: AnswerMarkup | None,
    now: datetime,
    *,
    staff_chat_id: int | None = None,
) -> int:
    """One run of the job (see `ticket_sync_job`)."""
    if not isinstance(gateway, WhmcsGateway):
        return 0
    sync = TicketReplySync(
        gateway, gateway.client, i18n, default_language, answer_markup, staff_chat_id=staff_chat_id
    )
    try:
        return await sync.run()
    except (WhmcsUnavailable, WhmcsAuthError) as exc:  # the next run tries again
        log.warning("ticket sync skipped: WHMCS unavailable (%s)", exc)
        return 0


SYNC_JOB_NAME = "whmcs_ticket_sync"
SYNC_INTERVAL_SECONDS = 60.0


def ticket_sync_job(
    gateway: BillingGateway,
    i18n: I18n,
    default_language: str,
    answer_markup: AnswerMarkup | None = None,
    staff_chat_id: int | None = None,
    interval_seconds: float = SYNC_INTERVAL_SECONDS,
) -> tuple[str, float, Callable[[datetime], Awaitable[int]]]:
    """(name, interval, job) for `bot.scheduler.add_jobs(..., billing_jobs=[...])`: the
    composition root builds it (only it may import the adapter); the scheduler runs it every
    minute under a job lease."""

    async def job(now: datetime) -> int:
        return await sync_ticket_replies(
            gateway, i18n, default_language, answer_markup, now, staff_chat_id=staff_chat_id
        )

    return SYNC_JOB_NAME, interval_seconds, job
