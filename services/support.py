"""The staff desk's Telegram mechanics: where a ticket lives in the staff group (a forum topic
per ticket, or a header message and replies to it), posting there with the topic recreated
when staff deleted it, and the topic showing the ticket's status: its title starts with a
status mark (🔴 support must answer, 🔵 answered, waiting for the customer, ⚪ closed) and ends
with who took the ticket, and the topic is closed and reopened with the ticket.

Whether the staff group is a forum is asked once (getChat) and kept in the bot store for
CHAT_KIND_TTL (adapter state CHAT_KIND), so a plain group never gets createForumTopic. A short
429 is waited by the flow control under every Bot API call (bot/flow_control.py); a long one
reaches the desk, which hands the post to the outbox.

Texts are made by the callers (handlers), already translated; this module only delivers.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import TelegramAPIError, TelegramBadRequest, TelegramRetryAfter
from aiogram.types import InlineKeyboardMarkup, Message, ReplyParameters

from services.billing import Billing
from services.contracts.tickets import Attachment, Ticket

log = logging.getLogger(__name__)

CAPTION_LIMIT = 1024
TOPIC_NAME_MAX = 128
CHAT_KIND = "tg_chat_kind"  # adapter state: {"forum": bool} per chat id
CHAT_KIND_TTL = timedelta(hours=1)
STATUS_MARKS = {"open": "🔴", "customer_replied": "🔴", "answered": "🔵", "closed": "⚪"}


def thread_gone(exc: TelegramBadRequest) -> bool:
    text = exc.message.lower()
    return "thread not found" in text or "topic_deleted" in text or "topic_id_invalid" in text


async def send_content(
    bot: Bot,
    chat_id: int,
    text: str,
    attachments: Sequence[Attachment] = (),
    *,
    thread_id: int | None = None,
    reply_to: int | None = None,
    markup: InlineKeyboardMarkup | None = None,
) -> list[Message]:
    """Text and files as few messages as possible: one file with the text as its caption when
    it fits, else the text first (with the keyboard) and then the files."""
    common: dict[str, Any] = {"message_thread_id": thread_id}
    if reply_to:
        common["reply_parameters"] = ReplyParameters(
            message_id=reply_to, allow_sending_without_reply=True
        )
    sent: list[Message] = []
    if len(attachments) == 1 and len(text) <= CAPTION_LIMIT:
        sent.append(await _send_file(bot, chat_id, attachments[0], text, markup, common))
        return sent
    if text:
        sent.append(await bot.send_message(chat_id, text, reply_markup=markup, **common))
    for index, item in enumerate(attachments):
        file_markup = markup if not text and index == 0 else None
        sent.append(await _send_file(bot, chat_id, item, None, file_markup, common))
    return sent


async def _send_file(
    bot: Bot,
    chat_id: int,
    item: Attachment,
    caption: str | None,
    markup: InlineKeyboardMarkup | None,
    common: dict[str, Any],
) -> Message:
    caption = caption or None
    if item.kind == "photo":
        return await bot.send_photo(
            chat_id, item.file_id, caption=caption, reply_markup=markup, **common
        )
    return await bot.send_document(
        chat_id, item.file_id, caption=caption, reply_markup=markup, **common
    )


def topic_name(ticket: Ticket, assignee: str | None = None) -> str:
    """«🔴 #12 Subject · Anna»: the status mark, the ticket and who took it (the subject is
    shortened to fit Telegram's 128 characters)."""
    head = f"{STATUS_MARKS.get(ticket.status, '🔴')} #{ticket.id} "
    tail = f" · {assignee}" if assignee else ""
    room = max(8, TOPIC_NAME_MAX - len(head) - len(tail))
    subject = ticket.subject if len(ticket.subject) <= room else ticket.subject[: room - 1] + "…"
    return (head + subject + tail)[:TOPIC_NAME_MAX]


class StaffDesk:
    """One ticket's place in the staff group. `header` builds the ticket's header text (the
    caller's translation and the account summary); it is posted when the place is made."""

    def __init__(
        self,
        bot: Bot,
        billing: Billing,
        chat_id: int,
        header: Callable[[Ticket], Awaitable[str]],
        recreated_note: Callable[[], str] = lambda: "",
    ) -> None:
        self.bot = bot
        self.billing = billing
        self.chat_id = chat_id
        self.header = header
        self.recreated_note = recreated_note

    async def is_forum(self) -> bool | None:
        """Whether the staff group is a forum: asked once (getChat) and kept for CHAT_KIND_TTL;
        None when Telegram could not say."""
        key = str(self.chat_id)
        known = await self.billing.get_adapter_state(CHAT_KIND, key)
        if known is not None:
            return bool(known.get("forum"))
        try:
            chat = await self.bot.get_chat(self.chat_id)
        except TelegramAPIError:
            log.warning("getChat of the staff group failed", exc_info=True)
            return None
        await self._remember_kind(bool(chat.is_forum))
        return bool(chat.is_forum)

    async def _remember_kind(self, forum: bool) -> None:
        await self.billing.put_adapter_state(
            CHAT_KIND,
            str(self.chat_id),
            {"forum": forum},
            expires_at=datetime.now(UTC) + CHAT_KIND_TTL,
        )

    async def create_topic(self, ticket: Ticket) -> int | None:
        """A new forum topic for the ticket; None where the group is not a forum."""
        if await self.is_forum() is False:
            return None
        assignee = (await self.billing.ticket_desk_state(ticket.id)).assignee_name
        name = topic_name(ticket, assignee)
        try:
            topic = await self.bot.create_forum_topic(self.chat_id, name)
        except TelegramBadRequest as exc:
            if "not a forum" in exc.message.lower() or "chat_not_forum" in exc.message.lower():
                await self._remember_kind(False)  # converted since getChat answered
                return None
            raise
        await self.billing.set_topic_state(ticket.id, name, False)
        if ticket.status == "closed":
            await self.sync_topic(ticket, topic.message_thread_id)
        return topic.message_thread_id

    async def sync_topic(self, ticket: Ticket, thread_id: int | None = None) -> None:
        """Make the ticket's topic show its status: the title (status mark, who took it) and
        closed or open with the ticket. Only what changed is asked, and what Telegram did is
        recorded; a failure is logged, never raised (the topic is cosmetic, the post that
        follows matters), and the next change of the ticket tries again."""
        if thread_id is None:
            place = await self.billing.ticket_place(ticket.id)
            if place is None or place.chat_id != self.chat_id or place.thread_id is None:
                return
            thread_id = place.thread_id
        state = await self.billing.ticket_desk_state(ticket.id)
        title = topic_name(ticket, state.assignee_name)
        closed = ticket.status == "closed"
        if title == state.topic_title and closed == state.topic_closed:
            return
        if title != state.topic_title and not await self._topic_call(
            ticket, self.bot.edit_forum_topic(self.chat_id, thread_id, name=title)
        ):
            title = state.topic_title or ""
        if closed != state.topic_closed:
            change = self.bot.close_forum_topic if closed else self.bot.reopen_forum_topic
            if not await self._topic_call(ticket, change(self.chat_id, thread_id)):
                closed = state.topic_closed
        await self.billing.set_topic_state(ticket.id, title, closed)

    @staticmethod
    async def _topic_call(ticket: Ticket, call: Awaitable[bool]) -> bool:
        """True when the topic is as asked (TOPIC_NOT_MODIFIED: it was already)."""
        try:
            await call
        except TelegramAPIError as exc:
            if "TOPIC_NOT_MODIFIED" in exc.message.upper():
                return True
            log.warning("topic of ticket %s not updated: %s", ticket.id, exc.message)
            return False
        return True

    async def open(
        self, ticket: Ticket, attachments: Sequence[Attachment] = (), recreated: bool = False
    ) -> int | None:
        """Make the ticket's place (a topic where the group is a forum) and post the header;
        returns the topic's thread id."""
        thread_id = await self.create_topic(ticket)
        await self.billing.set_ticket_thread(ticket.id, self.chat_id, thread_id)
        text = await self.header(ticket)
        if recreated:
            text = self.recreated_note() + "\n\n" + text
        messages = await send_content(
            self.bot, self.chat_id, text, attachments, thread_id=thread_id
        )
        await self._link(ticket, messages)
        return thread_id

    async def post(
        self,
        ticket: Ticket,
        text: str,
        attachments: Sequence[Attachment] = (),
        *,
        reply_to: int | None = None,
    ) -> list[Message]:
        """Post into the ticket's place: made first if it has none in this group yet, and
        made again when staff deleted the topic. When the group is rate-limited for long, the
        post is queued in the outbox for after `retry_after` and nothing is returned."""
        place = await self.billing.ticket_place(ticket.id)
        if place is None or place.chat_id != self.chat_id:
            thread_id = await self.open(ticket)
        else:
            thread_id = place.thread_id
            if thread_id:
                await self.sync_topic(ticket, thread_id)
        try:
            return await self._post_now(ticket, thread_id, text, attachments, reply_to)
        except TelegramRetryAfter as exc:
            await self._post_later(thread_id, ticket, text, attachments, exc.retry_after)
            return []

    async def _post_now(
        self,
        ticket: Ticket,
        thread_id: int | None,
        text: str,
        attachments: Sequence[Attachment],
        reply_to: int | None,
    ) -> list[Message]:
        try:
            messages = await send_content(
                self.bot, self.chat_id, text, attachments, thread_id=thread_id, reply_to=reply_to
            )
        except TelegramBadRequest as exc:
            if not (thread_id and thread_gone(exc)):
                raise
            log.info("topic of ticket %s is gone, recreating it", ticket.id)
            thread_id = await self.open(ticket, recreated=True)
            messages = await send_content(
                self.bot, self.chat_id, text, attachments, thread_id=thread_id
            )
        await self._link(ticket, messages)
        return messages

    async def _post_later(
        self,
        thread_id: int | None,
        ticket: Ticket,
        text: str,
        attachments: Sequence[Attachment],
        retry_after: int,
    ) -> None:
        log.info("staff group rate-limited for %s s: ticket %s queued", retry_after, ticket.id)
        not_before = datetime.now(UTC) + timedelta(seconds=retry_after)
        place: dict[str, Any] = {}  # the outbox adds chat_id itself
        if thread_id:
            place["message_thread_id"] = thread_id
        calls: list[tuple[str, dict[str, Any]]] = []
        if text:
            calls.append(("sendMessage", {**place, "text": text}))
        for item in attachments:
            field = "photo" if item.kind == "photo" else "document"
            calls.append((f"send{field.title()}", {**place, field: item.file_id}))
        for method, payload in calls:
            await self.billing.enqueue_message(self.chat_id, method, payload, not_before=not_before)

    async def _link(self, ticket: Ticket, messages: Sequence[Message]) -> None:
        for message in messages:
            await self.billing.link_staff_message(self.chat_id, message.message_id, ticket.id)
