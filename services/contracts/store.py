"""The half of the seam the bot keeps for itself: always its own database, even in front of
an external billing.

These are the bot's plumbing, not billing data: the delivery queue (outbox) and the durable
inbox of payment updates, job leases between instances, broadcasts, the marks that make every
alert happen once, the staff desk's links between tickets and staff-group messages, and what
an external billing adapter keeps next to the billing (which client a Telegram account is
linked to, small records of its own). Keeping
them local means "mark the alert and queue its message" is one transaction whatever billing
sits behind the bot. An external billing adapter implements `services.billing.BillingCore`
only.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, Protocol

from services.contracts.alerts import (
    AlertMarkSpec,
    BroadcastInfo,
    OutboxEmail,
    OutboxItem,
    OutgoingMessage,
)
from services.contracts.common import read_only, scan
from services.contracts.staff import CodeWordAttempt


@dataclass(frozen=True, slots=True)
class TicketPlace:
    """Where a ticket lives in the staff group."""

    chat_id: int
    thread_id: int | None  # its forum topic; None where the group is not a forum


@dataclass(frozen=True, slots=True)
class CustomerCopy:
    """A message the bot sent to a customer for a ticket (see `link_customer_message`); for a
    relayed staff answer also the staff-group message it copies."""

    chat_id: int
    message_id: int
    ticket_id: int
    content: str = "text"  # text: a text message; caption: a file with the text as caption
    staff_chat_id: int | None = None
    staff_message_id: int | None = None


@dataclass(frozen=True, slots=True)
class TicketDeskState:
    """How the ticket's forum topic looks now, and who of the staff took the ticket."""

    topic_title: str | None = None  # None: never set by the bot
    topic_closed: bool = False
    assignee_id: int | None = None
    assignee_name: str | None = None


@dataclass(frozen=True, slots=True)
class CannedAnswer:
    name: str
    text: str


# Outbox rows whose idempotency key is "<kind>:<ticket id>:..." with one of these kinds carry a
# ticket's message to its customer: once sent, the sender links the message to the ticket
# (`link_customer_message`), so that a reply to it reaches the ticket.
TICKET_MESSAGE_KEY_KINDS = ("whmcs_reply",)


def ticket_of_outbox_key(key: str | None) -> int | None:
    """The ticket an outbox row's idempotency key names (see TICKET_MESSAGE_KEY_KINDS)."""
    parts = (key or "").split(":")
    if len(parts) < 2 or parts[0] not in TICKET_MESSAGE_KEY_KINDS or not parts[1].isdigit():
        return None
    return int(parts[1])


class OutboxApi(Protocol):
    async def enqueue_messages(self, messages: Sequence[OutgoingMessage]) -> int:
        """Queue several calls in one statement; keys queued before are skipped. Returns how
        many rows were added."""

    async def enqueue_message(
        self,
        chat_id: int,
        method: str,
        payload: dict[str, Any],
        *,
        idempotency_key: str | None = None,
        not_before: datetime | None = None,
        broadcast_id: int | None = None,
    ) -> bool:
        """Queue one API call in the caller's transaction; False when the key was queued
        before (nothing is added)."""

    async def claim_outbox(
        self,
        owner: str,
        now: datetime,
        lease: timedelta,
        limit: int = 100,
        *,
        exclude_chats: Sequence[int] = (),
        per_chat_limit: int | None = None,
        email_fallback: bool = False,
    ) -> list[OutboxItem]:
        """Take up to `limit` due pending rows for `owner` until now + lease: alerts and relays
        before broadcasts, oldest first. Rows claimed by another owner whose lease has not
        expired are never returned. Rows for chats marked unreachable are closed as unreachable
        instead (with `email_fallback`, those with an e-mail copy become EMAIL_PENDING). Rows of
        `exclude_chats` are not claimed; with `per_chat_limit`, at most that many rows of one
        chat (its first ones in the same order) are claimed."""

    async def mark_outbox_sent(self, item_id: int, owner: str, now: datetime) -> None: ...

    async def mark_outbox_sent_many(self, owner: str, sent: Sequence[tuple[int, datetime]]) -> int:
        """`mark_outbox_sent` for several rows at once: each (row id, when its call was made)
        still claimed by `owner` is marked sent. Returns how many rows were marked."""

    async def mark_outbox_retry(
        self, item_id: int, owner: str, not_before: datetime, error: str
    ) -> None:
        """Count a failed attempt and release the row until `not_before`."""

    async def mark_outbox_failed(self, item_id: int, owner: str, error: str) -> None: ...

    async def release_outbox(self, item_ids: Sequence[int], owner: str) -> None:
        """Give claimed rows back untouched (the sender could not send them in its lease)."""

    async def mark_outbox_unreachable(
        self, item_id: int, chat_id: int, error: str, *, email_fallback: bool = False
    ) -> int:
        """403: the chat blocked the bot. Marks its account unreachable and closes this and the
        other pending rows of that chat; with `email_fallback` (e-mail can be sent), those with
        an e-mail copy become EMAIL_PENDING instead, their attempts counted from 0 again.
        Returns how many rows were taken from the Telegram queue."""

    async def claim_outbox_emails(
        self, owner: str, now: datetime, lease: timedelta, limit: int = 5
    ) -> list[OutboxEmail]:
        """Take up to `limit` due EMAIL_PENDING rows for `owner` until now + lease, oldest
        first; rows another owner holds under an unexpired lease are never returned. Writes
        nothing when none is due."""

    async def mark_outbox_emailed(self, item_id: int, owner: str, now: datetime) -> bool:
        """The e-mail went out: EMAILED, if `owner` still holds the row (False: it did not)."""

    async def mark_outbox_email_retry(
        self, item_id: int, owner: str, not_before: datetime, error: str
    ) -> None:
        """Count a failed e-mail attempt and release the row until `not_before`."""

    async def mark_outbox_email_dropped(self, item_id: int, owner: str, reason: str) -> None:
        """No e-mail can be sent (no confirmed address): the row is closed as UNREACHABLE."""

    @scan
    async def outbox_counts(self) -> dict[str, int]:
        """Rows per status."""


class PaymentInboxApi(Protocol):
    """Incoming successful_payment updates, kept before they are handled."""

    async def keep_payment_update(self, charge_id: str, update_id: int, body: str) -> bool:
        """Store a successful_payment update (its JSON) once per charge; False when kept
        before."""

    @read_only
    async def payment_update_answered(self, charge_id: str) -> bool:
        """True once `mark_payment_update_answered` ran for the charge."""

    async def mark_payment_update_answered(self, charge_id: str) -> None: ...

    @scan
    async def unanswered_payment_updates(self, received_before: datetime) -> list[str]:
        """The JSON of kept payment updates not yet answered, oldest first."""


class JobLeasesApi(Protocol):
    """One instance at a time runs a scheduled job or the sender."""

    async def acquire_job_lease(self, name: str, owner: str, now: datetime, ttl: timedelta) -> bool:
        """Take (or extend) the named lease until now + ttl; False while another owner holds
        an unexpired one."""

    async def release_job_lease(self, name: str, owner: str) -> None: ...


class BroadcastsApi(Protocol):
    @scan
    async def newsletter_subscriber_chat_ids(
        self, *, after_chat_id: int = 0, limit: int = 1000
    ) -> list[int]:
        """Private chats of reachable accounts subscribed to the newsletter, ascending."""

    @scan
    async def newsletter_subscriber_count(self) -> int: ...

    async def create_broadcast(
        self, created_by: int, text: str, photo_file_id: str | None, language: str | None
    ) -> BroadcastInfo: ...

    async def start_broadcast(self, broadcast_id: int, now: datetime) -> BroadcastInfo:
        """Queue the broadcast for every subscriber (one outbox row each, in one statement)
        and mark it sending. InvalidState unless it is a draft."""

    async def set_broadcast_progress_message(
        self, broadcast_id: int, chat_id: int, message_id: int
    ) -> None: ...

    @read_only
    async def get_broadcast(self, broadcast_id: int) -> BroadcastInfo:
        """With live counts from the outbox; NotFound for an unknown id."""

    @read_only
    async def active_broadcasts(self) -> list[BroadcastInfo]:
        """Broadcasts being sent, oldest first."""

    async def cancel_broadcast(self, broadcast_id: int, now: datetime) -> BroadcastInfo:
        """Stop a broadcast: rows not sent yet are cancelled. InvalidState once it is over."""

    async def finish_broadcast(self, broadcast_id: int, now: datetime) -> bool:
        """Mark a sending broadcast done when nothing is pending; True for the call that did."""


class AlertMarksApi(Protocol):
    """An alert mark records that an alert was produced, so it is produced once."""

    async def add_alert_mark(
        self,
        kind: str,
        key: str,
        *,
        order_id: int | None = None,
        period: datetime | None = None,
        stage: int | None = None,
    ) -> bool:
        """Record that an alert was produced; False when the mark exists already (then nothing
        changes: the caller skips the alert). Waits for a concurrent writer of the same mark."""

    async def add_alert_marks(self, marks: Sequence[AlertMarkSpec]) -> set[tuple[str, str]]:
        """Record several marks in one statement; returns the (kind, key) pairs that were new.
        A mark written by a concurrent transaction is not new (that one wins)."""

    @read_only
    async def has_alert_mark(self, kind: str, key: str) -> bool: ...

    async def remove_alert_mark(self, kind: str, key: str) -> None:
        """Undo a mark taken in this transaction (an attempt that did not happen)."""


class StaffDeskApi(Protocol):
    """Where tickets live in the staff group, reminders, and the limit on code-word checks."""

    @read_only
    async def ticket_id_of_thread(self, chat_id: int, thread_id: int) -> int | None:
        """The ticket whose topic this is in the staff group (the newest, if a topic id was
        reused)."""

    @read_only
    async def ticket_id_of_staff_message(self, chat_id: int, message_id: int) -> int | None:
        """The ticket a staff-group message was linked to with `link_staff_message`."""

    @read_only
    async def ticket_place(self, ticket_id: int) -> TicketPlace | None:
        """None until `set_ticket_thread` gave the ticket a place."""

    async def set_ticket_thread(self, ticket_id: int, chat_id: int, thread_id: int | None) -> None:
        """Where the ticket lives in the staff group (thread None: a non-forum group)."""

    async def link_staff_message(self, chat_id: int, message_id: int, ticket_id: int) -> None:
        """Remember that a message in the staff group belongs to a ticket (idempotent)."""

    @read_only
    async def was_ticket_reminded(self, ticket_id: int, waiting_since: datetime) -> bool:
        """Staff were reminded of the ticket at or after `waiting_since` (when the customer
        last wrote: the ticket's `updated_at`)."""

    async def mark_ticket_reminded(
        self, ticket_id: int, waiting_since: datetime, at: datetime
    ) -> bool:
        """Record the reminder about the wait that began at `waiting_since`; False when another
        run has reminded about this wait already (it is sent once)."""

    async def link_customer_message(self, copy: CustomerCopy) -> None:
        """Remember that a message the bot sent to a customer's chat belongs to a ticket, and
        which staff-group message it copies, if any (idempotent: linked once, kept)."""

    @read_only
    async def ticket_id_of_customer_message(self, chat_id: int, message_id: int) -> int | None:
        """The ticket a message in a customer's chat was linked to with
        `link_customer_message`."""

    @read_only
    async def customer_copies(
        self, staff_chat_id: int, staff_message_id: int
    ) -> list[CustomerCopy]:
        """The messages the bot sent to customers as copies of this staff-group message."""

    @read_only
    async def ticket_desk_state(self, ticket_id: int) -> TicketDeskState:
        """The defaults until something was recorded."""

    async def set_topic_state(self, ticket_id: int, title: str, closed: bool) -> None:
        """Record how the ticket's topic looks after the bot changed it."""

    async def assign_ticket(self, ticket_id: int, staff_user_id: int, staff_name: str) -> None:
        """The staff member takes the ticket (replacing whoever had it)."""

    @read_only
    async def assignees(self, ticket_ids: Sequence[int]) -> dict[int, str]:
        """The name of whoever took each of these tickets (tickets nobody took are left out)."""

    @read_only
    async def canned_answers(self) -> list[CannedAnswer]:
        """By name."""

    @read_only
    async def canned_answer(self, name: str) -> CannedAnswer | None: ...

    async def save_canned_answer(self, name: str, text: str, updated_by: int) -> bool:
        """Create or replace; True when it is new."""

    async def delete_canned_answer(self, name: str) -> bool:
        """False when there was none."""

    async def rate_ticket(self, ticket_id: int, account_id: int, rating: int) -> bool:
        """The customer's rating (1-5) of the ticket, kept once: False when the ticket was
        rated already (nothing changes). Of two concurrent ratings one is kept."""

    @read_only
    async def ticket_rating(self, ticket_id: int) -> int | None: ...

    async def take_code_word_attempt(
        self, account_id: int, staff_user_id: int, *, limit: int, window: timedelta
    ) -> CodeWordAttempt:
        """Count one code-word check of the account by `staff_user_id`, unless `limit` checks
        were counted within `window` already: then the attempt is refused (and recorded as
        refused). NotFound for an unknown account."""


class BillingLinksApi(Protocol):
    """Which client of an external billing a Telegram account is linked to (the embedded
    billing links nobody: its accounts are the clients)."""

    @read_only
    async def billing_client_id(self, account_id: int) -> int | None: ...

    @read_only
    async def account_id_of_billing_client(self, client_id: int) -> int | None: ...

    async def link_billing_client(self, account_id: int, client_id: int) -> None:
        """Link the account to the client; a Telegram account linked to the client before
        loses the link (the new one proved it owns the client). NotFound for an unknown
        account."""

    async def unlink_billing_client(self, account_id: int) -> None: ...

    @scan
    async def linked_accounts(
        self, *, after_account_id: int = 0, limit: int = 500
    ) -> list[tuple[int, int]]:
        """(account id, client id) of linked accounts, by account id."""


class WebLoginsApi(Protocol):
    """The limits on the web login's attempts, per login and per client address."""

    async def take_web_login_attempt(
        self, login: str, ip: str, *, per_login: int, per_ip: int, window: timedelta
    ) -> int:
        """Count one attempt to log in as `login` (compared lowercased) from `ip`, unless
        `per_login` attempts at that login or `per_ip` from that address were counted within
        `window`: then nothing is counted and the answer is the seconds until one more is
        possible; 0 when this one was counted (its password may be checked now)."""

    async def clear_web_login_attempts(self, login: str) -> None:
        """A successful login: its login's attempts count no more."""

    @read_only
    async def web_session_epoch(self, account_id: int) -> int:
        """The epoch a web session of the account must name to be valid (NotFound without
        the account)."""

    async def end_web_sessions(self, account_id: int) -> int:
        """Logout: every web session of the account given out so far ends (the epoch moves
        on; a new password does the same). Returns the new epoch."""


class AdapterStateApi(Protocol):
    """Small JSON records an external billing adapter keeps locally, by (kind, key). An
    expired record reads as absent."""

    @read_only
    async def get_adapter_state(self, kind: str, key: str) -> dict[str, Any] | None: ...

    async def put_adapter_state(
        self, kind: str, key: str, value: dict[str, Any], *, expires_at: datetime | None = None
    ) -> None:
        """Create or replace the record."""

    async def add_adapter_state(
        self, kind: str, key: str, value: dict[str, Any], *, expires_at: datetime | None = None
    ) -> bool:
        """Create the record unless a live one exists (an expired one is replaced); False when
        one does, and nothing changes. Of two concurrent adders one gets True."""

    async def take_adapter_state(self, kind: str, key: str) -> dict[str, Any] | None:
        """Delete the record and return it: of two concurrent takers one gets it."""

    async def delete_adapter_state(self, kind: str, key: str) -> None: ...
