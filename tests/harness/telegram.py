"""A stand-in for the Telegram Bot API: keeps chats and messages, answers like Telegram
(including its errors), records every call, and builds the updates a user or staff would cause.

The same core serves the in-process tests (through RecordingSession) and the end-to-end tests
(through the aiohttp server in tests/harness/server.py). Every request is validated with
aiogram's own method models, so a malformed call fails the way Telegram would reject it.
"""

from __future__ import annotations

import asyncio
import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from html.parser import HTMLParser
from typing import Any

from aiogram import methods as tg_methods
from aiogram.methods import TelegramMethod
from pydantic import ValidationError

BOT_ID = 1000001
BOT_USERNAME = "cabinet_test_bot"
TOKEN = f"{BOT_ID}:TEST-token-abcdefghijklmnopqrstuvwxyz"

METHOD_MODELS: dict[str, type[TelegramMethod[Any]]] = {
    cls.__api_method__: cls
    for cls in vars(tg_methods).values()
    if isinstance(cls, type) and issubclass(cls, TelegramMethod) and hasattr(cls, "__api_method__")
}


class ApiError(Exception):
    def __init__(self, status: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.status = status
        self.description = description
        self.retry_after = retry_after

    def payload(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False,
            "error_code": self.status,
            "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


def bad_request(text: str) -> ApiError:
    return ApiError(400, f"Bad Request: {text}")


ALLOWED_TAGS = {
    "b",
    "strong",
    "i",
    "em",
    "u",
    "ins",
    "s",
    "strike",
    "del",
    "span",
    "tg-spoiler",
    "a",
    "code",
    "pre",
    "blockquote",
    "tg-emoji",
}


class _TelegramHtml(HTMLParser):
    """Telegram's HTML parse mode: only its tags, properly nested; what remains is the text."""

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.stack: list[str] = []
        self.parts: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ALLOWED_TAGS:
            raise bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')
        self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        raise bad_request(f'can\'t parse entities: Unsupported start tag "{tag}"')

    def handle_endtag(self, tag: str) -> None:
        if not self.stack or self.stack[-1] != tag:
            raise bad_request(f'can\'t parse entities: Unmatched end tag "{tag}"')
        self.stack.pop()

    def handle_data(self, data: str) -> None:
        self.parts.append(data)


def _visible_text(markup: str) -> str:
    parser = _TelegramHtml()
    parser.feed(markup)
    parser.close()
    if parser.stack:
        tag = parser.stack[-1]
        raise bad_request(f"can't parse entities: Can't find end tag for start tag \"{tag}\"")
    return "".join(parser.parts)


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    result: Any = None
    error: ApiError | None = None
    at: float = 0.0  # FakeTelegram.clock() when the call arrived
    dropped: bool = False  # the connection dropped: the bot got no answer (see drop_next)

    def __getitem__(self, key: str) -> Any:
        return self.params[key]

    def get(self, key: str, default: Any = None) -> Any:
        return self.params.get(key, default)

    @property
    def text(self) -> str | None:
        return self.params.get("text", self.params.get("caption"))

    def buttons(self) -> list[list[dict[str, Any]]]:
        markup = self.params.get("reply_markup") or {}
        return markup.get("inline_keyboard") or markup.get("keyboard") or []

    def button_texts(self) -> list[str]:
        return [b["text"] for row in self.buttons() for b in row]

    def callback_data(self, text_part: str) -> str:
        for row in self.buttons():
            for button in row:
                if text_part in button["text"]:
                    return button["callback_data"]
        raise AssertionError(f"no button with {text_part!r} in {self.button_texts()}")


@dataclass
class Chat:
    id: int
    type: str = "private"
    title: str | None = None
    first_name: str | None = None
    is_forum: bool = False

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "type": self.type}
        if self.title:
            data["title"] = self.title
        if self.first_name:
            data["first_name"] = self.first_name
        if self.is_forum:
            data["is_forum"] = True
        return data


@dataclass
class User:
    id: int
    first_name: str = "Test"
    last_name: str | None = None
    username: str | None = None
    language_code: str | None = "en"

    def as_dict(self) -> dict[str, Any]:
        data: dict[str, Any] = {"id": self.id, "is_bot": False, "first_name": self.first_name}
        for key in ("last_name", "username", "language_code"):
            if getattr(self, key):
                data[key] = getattr(self, key)
        return data


@dataclass
class QueuedError:
    method: str
    error: ApiError
    match: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class QueuedDrop:
    method: str
    performed: bool
    match: Callable[[dict[str, Any]], bool] | None = None


@dataclass
class CallHook:
    method: str
    callback: Callable[[dict[str, Any]], None]
    match: Callable[[dict[str, Any]], bool] | None = None


class HeldCall:
    """A call the stand-in holds unanswered (see FakeTelegram.hold) until `release()`."""

    def __init__(self, method: str, match: Callable[[dict[str, Any]], bool] | None) -> None:
        self.method, self.match = method, match
        self.params: dict[str, Any] | None = None  # set when the call arrives
        self.performed = False
        self._arrived = asyncio.Event()
        self._released = asyncio.Event()

    async def arrived(self, timeout: float = 10.0) -> dict[str, Any]:
        """Wait until the held call arrives; returns its parameters."""
        await asyncio.wait_for(self._arrived.wait(), timeout)
        assert self.params is not None
        return self.params

    def release(self, *, performed: bool = False) -> None:
        """Let the held call go on. performed=False: it never reached Telegram (recorded as
        dropped, the connection is closed without an answer); True: Telegram performs it and
        answers as usual."""
        if not self._released.is_set():
            self.performed = performed
            self._released.set()


class ConnectionDropped(Exception):
    """The connection to the stand-in dropped before an answer (RecordingSession turns it into
    aiogram's TelegramNetworkError)."""


# What a per-chat flood limit counts: messages sent to a chat and edits of them.
CHAT_LIMITED_PREFIXES = ("send", "copyMessage", "forwardMessage", "editMessage")


@dataclass
class ChatBucket:
    tokens: float
    stamp: float


def chat_member(status: str, user: dict[str, Any]) -> dict[str, Any]:
    """A ChatMember object as Telegram sends it for `status` (creator, administrator, member,
    restricted, left, kicked)."""
    member: dict[str, Any] = {"status": status, "user": user}
    if status == "creator":
        member.update(is_anonymous=False)
    elif status == "administrator":
        member.update(
            can_be_edited=False,
            is_anonymous=False,
            can_manage_chat=True,
            can_delete_messages=True,
            can_manage_video_chats=True,
            can_restrict_members=True,
            can_promote_members=False,
            can_change_info=True,
            can_invite_users=True,
            can_post_stories=False,
            can_edit_stories=False,
            can_delete_stories=False,
            can_send_welcome_messages=False,
        )
    elif status == "restricted":
        member.update(
            is_member=True,
            can_send_messages=True,
            can_send_audios=True,
            can_send_documents=True,
            can_send_photos=True,
            can_send_videos=True,
            can_send_video_notes=True,
            can_send_voice_notes=True,
            can_send_polls=True,
            can_send_other_messages=True,
            can_add_web_page_previews=True,
            can_react_to_messages=True,
            can_edit_tag=False,
            can_change_info=False,
            can_invite_users=False,
            can_pin_messages=False,
            can_manage_topics=False,
            until_date=0,
        )
    elif status == "kicked":
        member.update(until_date=0)
    return member


@dataclass
class FakeTelegram:
    calls: list[Call] = field(default_factory=list)
    chats: dict[int, Chat] = field(default_factory=dict)
    messages: dict[tuple[int, int], dict[str, Any]] = field(default_factory=dict)
    topics: dict[tuple[int, int], str] = field(default_factory=dict)
    closed_topics: set[tuple[int, int]] = field(default_factory=set)
    blocked: set[int] = field(default_factory=set)
    chat_members: dict[tuple[int, int], str] = field(default_factory=dict)
    webhook: dict[str, Any] = field(default_factory=dict)
    refunds: list[tuple[int, str]] = field(default_factory=list)
    # Bot API calls made while a billing transaction was open (must stay empty).
    calls_in_transaction: list[str] = field(default_factory=list)
    clock: Callable[[], float] = time.time
    # Seconds one Bot API round trip takes (each call, getUpdates included); 0 = instant.
    latency: float = 0.0

    def __post_init__(self) -> None:
        self._message_ids: dict[int, itertools.count[int]] = {}
        self._update_ids = itertools.count(1)
        self._callback_ids = itertools.count(1)
        self._thread_ids = itertools.count(100)
        self._errors: list[QueuedError] = []
        self._drops: list[QueuedDrop] = []
        self._hooks: list[CallHook] = []
        self._holds: list[HeldCall] = []
        self._taken_holds: list[HeldCall] = []
        self._chat_limit: tuple[float, float, int | None] | None = None
        self._chat_buckets: dict[int, ChatBucket] = {}
        self._updates: list[dict[str, Any]] = []
        self._open_queries: set[str] = set()
        self._changed = asyncio.Condition()
        self._update_event: asyncio.Event | None = None

    # ---- test controls -------------------------------------------------------------------
    def add_chat(self, chat: Chat) -> Chat:
        self.chats[chat.id] = chat
        return chat

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        retry_after: int | None = None,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """The next matching call of `method` fails as Telegram would."""
        self._errors.append(QueuedError(method, ApiError(status, description, retry_after), match))

    def drop_next(
        self,
        method: str,
        *,
        performed: bool = False,
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """The connection of the next matching call of `method` drops (in-process tests: the
        bot gets TelegramNetworkError). performed=False: the request never reached Telegram;
        True: Telegram performed it and the answer was lost."""
        self._drops.append(QueuedDrop(method, performed, match))

    def on_next(
        self,
        method: str,
        callback: Callable[[dict[str, Any]], None],
        match: Callable[[dict[str, Any]], bool] | None = None,
    ) -> None:
        """Call `callback(params)` synchronously when the next matching call of `method`
        arrives, before the stand-in handles it (e.g. to kill the bot process at that moment;
        the call is then handled as Telegram would: a getUpdates still confirms its offset).
        Every hook waiting for a call runs, in the order they were set."""
        self._hooks.append(CallHook(method, callback, match))

    def hold(self, method: str, match: Callable[[dict[str, Any]], bool] | None = None) -> HeldCall:
        """The next matching call of `method` gets no answer until the returned handle is
        released; until then it is not in `calls`."""
        held = HeldCall(method, match)
        self._holds.append(held)
        return held

    def release_holds(self) -> None:
        """Release every held call (as never performed) and forget holds not yet taken."""
        for held in self._holds:
            held.release()
        self._holds.clear()
        for held in self._taken_holds:
            held.release()
        self._taken_holds.clear()

    def limit_chat_rate(
        self, per_second: float = 1.0, burst: int = 1, retry_after: int | None = None
    ) -> None:
        """Telegram-like flood control: a chat takes `per_second` messages (and edits) a second,
        `burst` at once; beyond that a call is refused with 429 and `retry_after` (default: the
        whole seconds until the chat takes one again). Off by default."""
        self._chat_limit = (per_second, float(burst), retry_after)
        self._chat_buckets.clear()

    def refused(self, status: int = 429) -> list[Call]:
        """Calls Telegram refused with `status`, in order."""
        return [c for c in self.calls if c.error is not None and c.error.status == status]

    def block_bot(self, user_id: int) -> None:
        self.blocked.add(user_id)

    def set_member(self, chat_id: int, user_id: int, status: str = "member") -> None:
        self.chat_members[(chat_id, user_id)] = status

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        self.topics.pop((chat_id, thread_id), None)
        self.closed_topics.discard((chat_id, thread_id))

    def calls_of(self, method: str) -> list[Call]:
        return [c for c in self.calls if c.method == method and c.error is None]

    def sent(self, chat_id: int | None = None) -> list[Call]:
        """Successful send* calls (optionally to one chat), in order."""
        return [
            c
            for c in self.calls
            if c.method.startswith(("send", "copyMessage"))
            and c.error is None
            and (chat_id is None or c.params.get("chat_id") == chat_id)
        ]

    def last_sent(self, chat_id: int | None = None) -> Call:
        sent = self.sent(chat_id)
        assert sent, f"nothing was sent to {chat_id}"
        return sent[-1]

    def reset_calls(self) -> None:
        self.calls.clear()

    def message(self, chat_id: int, message_id: int) -> dict[str, Any]:
        return self.messages[(chat_id, message_id)]

    # ---- dispatching ---------------------------------------------------------------------
    async def handle(self, method: str, params: dict[str, Any]) -> tuple[int, dict[str, Any]]:
        if self.latency > 0:  # the request travels to Telegram and the answer back
            await asyncio.sleep(self.latency)
        for hook in [h for h in self._hooks if h.method == method]:
            if hook.match is None or hook.match(params):
                self._hooks.remove(hook)
                hook.callback(params)
        held = self._take_matching(self._holds, method, params)
        if held is not None:
            held.params = params
            self._taken_holds.append(held)
            held._arrived.set()
            await held._released.wait()
            if held in self._taken_holds:
                self._taken_holds.remove(held)
            if not held.performed:
                self.calls.append(
                    Call(
                        method,
                        params,
                        error=ApiError(0, "connection dropped before the request arrived"),
                        at=self.clock(),
                        dropped=True,
                    )
                )
                raise ConnectionDropped(method)
        call = Call(method, params, at=self.clock())
        self.calls.append(call)
        drop = self._take_drop(method, params)
        if drop is not None and not drop.performed:
            call.dropped = True
            call.error = ApiError(0, "connection dropped before the request arrived")
            raise ConnectionDropped(method)
        try:
            result = await self._dispatch(method, params)
        except ApiError as exc:
            call.error = exc
            if drop is not None:
                call.dropped = True
                raise ConnectionDropped(method) from None
            return exc.status, exc.payload()
        call.result = result
        async with self._changed:
            self._changed.notify_all()
        if drop is not None:  # performed, but the answer is lost
            call.dropped = True
            raise ConnectionDropped(method)
        return 200, {"ok": True, "result": result}

    async def _dispatch(self, method: str, params: dict[str, Any]) -> Any:
        for queued in self._errors:
            if queued.method == method and (queued.match is None or queued.match(params)):
                self._errors.remove(queued)
                raise queued.error
        self._check_chat_rate(method, params)
        model = METHOD_MODELS.get(method)
        handler = getattr(self, f"_m_{method}", None)
        if model is None or handler is None:
            raise ApiError(404, "Not Found: method not found")
        try:
            model.model_validate(params)
        except ValidationError as exc:
            raise bad_request(f"invalid parameters: {exc.errors()[0]['msg']}") from None
        return await handler(params) if asyncio.iscoroutinefunction(handler) else handler(params)

    @staticmethod
    def _take_matching(queue: list[Any], method: str, params: dict[str, Any]) -> Any:
        for item in queue:
            if item.method == method and (item.match is None or item.match(params)):
                queue.remove(item)
                return item
        return None

    def _take_drop(self, method: str, params: dict[str, Any]) -> QueuedDrop | None:
        for drop in self._drops:
            if drop.method == method and (drop.match is None or drop.match(params)):
                self._drops.remove(drop)
                return drop
        return None

    def _check_chat_rate(self, method: str, params: dict[str, Any]) -> None:
        if self._chat_limit is None or not method.startswith(CHAT_LIMITED_PREFIXES):
            return
        if method == "sendChatAction" or params.get("chat_id") is None:
            return
        per_second, burst, retry_after = self._chat_limit
        try:
            chat_id = int(params["chat_id"])
        except (TypeError, ValueError):
            return
        now = self.clock()
        bucket = self._chat_buckets.setdefault(chat_id, ChatBucket(burst, now))
        if now > bucket.stamp:
            bucket.tokens = min(burst, bucket.tokens + (now - bucket.stamp) * per_second)
            bucket.stamp = now
        if bucket.tokens >= 1 - 1e-9:
            bucket.tokens -= 1
            return
        wait = retry_after or max(1, math.ceil((1 - bucket.tokens) / per_second - 1e-9))
        raise ApiError(429, f"Too Many Requests: retry after {wait}", retry_after=wait)

    async def wait_for(
        self, predicate: Callable[[Call], bool], timeout: float = 10.0, start: int = 0
    ) -> Call:
        """Wait until a successful call after index `start` matches `predicate`."""

        def found() -> Call | None:
            return next((c for c in self.calls[start:] if c.error is None and predicate(c)), None)

        async with self._changed:
            await asyncio.wait_for(self._changed.wait_for(lambda: found() is not None), timeout)
        result = found()
        assert result is not None
        return result

    # ---- chats and messages ----------------------------------------------------------------
    def _chat(self, chat_id: Any) -> Chat:
        try:
            chat_id = int(chat_id)
        except (TypeError, ValueError):
            raise bad_request("chat not found") from None
        chat = self.chats.get(chat_id)
        if chat is None:
            if chat_id > 0:  # a user who started the bot
                chat = self.add_chat(Chat(id=chat_id, first_name="User"))
            else:
                raise bad_request("chat not found")
        if chat.type == "private" and chat.id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        return chat

    def _next_message_id(self, chat_id: int) -> int:
        return next(self._message_ids.setdefault(chat_id, itertools.count(1)))

    def _store(
        self,
        chat: Chat,
        content: dict[str, Any],
        params: dict[str, Any],
        sender: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        message: dict[str, Any] = {
            "message_id": self._next_message_id(chat.id),
            "date": int(self.clock()),
            "chat": chat.as_dict(),
            "from": sender
            or {"id": BOT_ID, "is_bot": True, "first_name": "Cabinet", "username": BOT_USERNAME},
            **content,
        }
        thread_id = params.get("message_thread_id")
        if thread_id:
            if chat.is_forum and (chat.id, int(thread_id)) not in self.topics:
                raise bad_request("message thread not found")
            message["message_thread_id"] = int(thread_id)
            message["is_topic_message"] = True
        markup = params.get("reply_markup")
        if markup and "inline_keyboard" in markup:
            self._check_keyboard(markup)
            message["reply_markup"] = markup
        reply_to = params.get("reply_parameters") or {}
        if reply_to.get("message_id"):
            original = self.messages.get((chat.id, int(reply_to["message_id"])))
            if original is None and not reply_to.get("allow_sending_without_reply"):
                raise bad_request("message to be replied not found")
            if original is not None:
                message["reply_to_message"] = original
        self.messages[(chat.id, message["message_id"])] = message
        return message

    @staticmethod
    def _check_keyboard(markup: dict[str, Any]) -> None:
        for row in markup["inline_keyboard"]:
            for button in row:
                data = button.get("callback_data")
                if data is not None and not 1 <= len(data.encode()) <= 64:
                    raise bad_request("BUTTON_DATA_INVALID")

    @staticmethod
    def _check_text(
        text: Any, limit: int = 4096, what: str = "message text", parse_mode: str | None = None
    ) -> str:
        """Empty, too long (counted without markup, as Telegram does) or malformed HTML fail."""
        if text is None or not str(text).strip():
            raise bad_request(f"{what} is empty")
        plain = _visible_text(str(text)) if parse_mode == "HTML" else str(text)
        if not plain.strip():
            raise bad_request(f"{what} is empty")
        if len(plain) > limit:
            raise bad_request(
                "message is too long" if limit == 4096 else "message caption is too long"
            )
        return str(text)

    # ---- methods -----------------------------------------------------------------------------
    def _m_getMe(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "Cabinet",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": True,
            "supports_inline_queries": False,
        }

    def _m_setMyCommands(self, params: dict[str, Any]) -> bool:
        return True

    def _m_deleteMyCommands(self, params: dict[str, Any]) -> bool:
        return True

    def _m_setWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {"url": params["url"], "secret_token": params.get("secret_token")}
        return True

    def _m_deleteWebhook(self, params: dict[str, Any]) -> bool:
        self.webhook = {}
        return True

    def _m_getWebhookInfo(self, params: dict[str, Any]) -> dict[str, Any]:
        return {
            "url": self.webhook.get("url", ""),
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    def _m_sendMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        text = self._check_text(params.get("text"), parse_mode=params.get("parse_mode"))
        return self._store(chat, {"text": text}, params)

    def _m_sendPhoto(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        content: dict[str, Any] = {
            "photo": [
                {
                    "file_id": str(params["photo"]),
                    "file_unique_id": "u" + str(params["photo"])[-8:],
                    "width": 800,
                    "height": 600,
                }
            ]
        }
        if params.get("caption"):
            content["caption"] = self._check_text(
                params["caption"], 1024, "caption", params.get("parse_mode")
            )
        return self._store(chat, content, params)

    def _m_sendDocument(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        content: dict[str, Any] = {
            "document": {
                "file_id": str(params["document"]),
                "file_unique_id": "d" + str(params["document"])[-8:],
            }
        }
        if params.get("caption"):
            content["caption"] = self._check_text(
                params["caption"], 1024, "caption", params.get("parse_mode")
            )
        return self._store(chat, content, params)

    def _m_copyMessage(self, params: dict[str, Any]) -> dict[str, Any]:
        source = self.messages.get((int(params["from_chat_id"]), int(params["message_id"])))
        if source is None:
            raise bad_request("message to copy not found")
        chat = self._chat(params["chat_id"])
        content = {
            k: v
            for k, v in source.items()
            if k in ("text", "photo", "document", "caption", "entities")
        }
        if "caption" in params and params["caption"] is not None:
            content["caption"] = params["caption"]
        message = self._store(chat, content, params)
        return {"message_id": message["message_id"]}

    def _m_sendChatAction(self, params: dict[str, Any]) -> bool:
        self._chat(params["chat_id"])
        return True

    def _m_sendInvoice(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        currency = params["currency"]
        if currency != "XTR" and not params.get("provider_token"):
            raise bad_request("PAYMENT_PROVIDER_INVALID")
        total = sum(int(p["amount"]) for p in params["prices"])
        if total <= 0:
            raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
        content = {
            "invoice": {
                "title": params["title"],
                "description": params["description"],
                "start_parameter": params.get("start_parameter") or "",
                "currency": currency,
                "total_amount": total,
            }
        }
        return self._store(chat, content, params)

    def _m_createInvoiceLink(self, params: dict[str, Any]) -> str:
        """As sendInvoice checks it; the link names the payload (the real one is opaque)."""
        if params["currency"] != "XTR" and not params.get("provider_token"):
            raise bad_request("PAYMENT_PROVIDER_INVALID")
        if sum(int(p["amount"]) for p in params["prices"]) <= 0:
            raise bad_request("CURRENCY_TOTAL_AMOUNT_INVALID")
        return f"https://t.me/$invoice-{params['payload'].replace(':', '-')}"

    def _m_setChatMenuButton(self, params: dict[str, Any]) -> bool:
        button = params.get("menu_button") or {}
        if button.get("type") == "web_app" and not button["web_app"]["url"].startswith("https://"):
            raise bad_request("BUTTON_URL_INVALID")
        return True

    def _m_editMessageText(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable(params)
        if "text" not in message:
            raise bad_request("there is no text in the message to edit")
        text = self._check_text(params.get("text"), parse_mode=params.get("parse_mode"))
        markup = params.get("reply_markup")
        if markup:
            self._check_keyboard(markup)
        if message.get("text") == text and message.get("reply_markup") == markup:
            raise bad_request(
                "message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup "
                "of the message"
            )
        message["text"] = text
        message["edit_date"] = int(self.clock())
        if markup:
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)  # Telegram drops the keyboard on such an edit
        return message

    def _m_editMessageReplyMarkup(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable(params)
        markup = params.get("reply_markup")
        if message.get("reply_markup") == markup:
            raise bad_request(
                "message is not modified: specified new message content and reply "
                "markup are exactly the same as a current content and reply markup "
                "of the message"
            )
        if markup:
            self._check_keyboard(markup)
            message["reply_markup"] = markup
        else:
            message.pop("reply_markup", None)
        return message

    def _m_editMessageCaption(self, params: dict[str, Any]) -> dict[str, Any]:
        message = self._editable(params)
        message["caption"] = params.get("caption") or ""
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        return message

    def _editable(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params.get("chat_id"))
        message = self.messages.get((chat.id, int(params.get("message_id") or 0)))
        if message is None:
            raise bad_request("message to edit not found")
        if message["from"].get("id") != BOT_ID:
            raise bad_request("message can't be edited")
        return message

    def _m_deleteMessage(self, params: dict[str, Any]) -> bool:
        key = (int(params["chat_id"]), int(params["message_id"]))
        if key not in self.messages:
            raise bad_request("message to delete not found")
        del self.messages[key]
        return True

    def _m_answerCallbackQuery(self, params: dict[str, Any]) -> bool:
        query_id = params["callback_query_id"]
        if query_id not in self._open_queries:
            raise bad_request(
                "query is too old and response timeout expired or query ID is invalid"
            )
        self._open_queries.discard(query_id)
        if params.get("text") and len(params["text"]) > 200:
            raise bad_request("MESSAGE_TOO_LONG")
        return True

    def _m_answerPreCheckoutQuery(self, params: dict[str, Any]) -> bool:
        if not params.get("ok") and not params.get("error_message"):
            raise bad_request("error_message is required when ok is false")
        return True

    def _m_refundStarPayment(self, params: dict[str, Any]) -> bool:
        refund = (int(params["user_id"]), params["telegram_payment_charge_id"])
        if refund in self.refunds:  # Telegram refunds a charge once
            raise bad_request("CHARGE_ALREADY_REFUNDED")
        self.refunds.append(refund)
        return True

    def _m_createForumTopic(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        if not chat.is_forum:
            raise bad_request("the chat is not a forum")
        name = str(params["name"])
        if not 1 <= len(name) <= 128:
            raise bad_request("TOPIC_NAME_INVALID")
        thread_id = next(self._thread_ids)
        self.topics[(chat.id, thread_id)] = name
        return {"message_thread_id": thread_id, "name": name, "icon_color": 7322096}

    def _topic(self, params: dict[str, Any]) -> tuple[int, int]:
        key = (int(params["chat_id"]), int(params["message_thread_id"]))
        if key not in self.topics:
            raise bad_request("message thread not found")
        return key

    def _m_editForumTopic(self, params: dict[str, Any]) -> bool:
        key = self._topic(params)
        name = params.get("name")
        if name is not None and not 1 <= len(str(name)) <= 128:
            raise bad_request("TOPIC_NAME_INVALID")
        if name is None or self.topics[key] == name:  # Telegram refuses an edit changing nothing
            raise bad_request("TOPIC_NOT_MODIFIED")
        self.topics[key] = str(name)
        return True

    def _m_closeForumTopic(self, params: dict[str, Any]) -> bool:
        key = self._topic(params)
        if key in self.closed_topics:
            raise bad_request("TOPIC_NOT_MODIFIED")
        self.closed_topics.add(key)
        return True

    def _m_reopenForumTopic(self, params: dict[str, Any]) -> bool:
        key = self._topic(params)
        if key not in self.closed_topics:
            raise bad_request("TOPIC_NOT_MODIFIED")
        self.closed_topics.discard(key)
        return True

    def _m_getChat(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        return {
            **chat.as_dict(),
            "accent_color_id": 0,
            "max_reaction_count": 11,
            "accepted_gift_types": {
                "unlimited_gifts": False,
                "limited_gifts": False,
                "unique_gifts": False,
                "premium_subscription": False,
                "gifts_from_channels": False,
            },
        }

    def _m_getChatMember(self, params: dict[str, Any]) -> dict[str, Any]:
        chat = self._chat(params["chat_id"])
        user_id = int(params["user_id"])
        status = self.chat_members.get((chat.id, user_id), "left")
        return chat_member(status, {"id": user_id, "is_bot": False, "first_name": "U"})

    # ---- long polling ------------------------------------------------------------------------
    async def _m_getUpdates(self, params: dict[str, Any]) -> list[dict[str, Any]]:
        if self.webhook.get("url"):
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = int(params.get("offset") or 0)
        if offset:
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        timeout = float(params.get("timeout") or 0)
        deadline = time.monotonic() + min(timeout, 2.0)
        while not self._updates and time.monotonic() < deadline:
            self._update_event = asyncio.Event()
            try:
                await asyncio.wait_for(self._update_event.wait(), deadline - time.monotonic())
            except TimeoutError:
                break
        limit = int(params.get("limit") or 100)
        return self._updates[:limit]

    def enqueue_update(self, update: dict[str, Any]) -> None:
        """Make an update available to getUpdates (the e2e polling path)."""
        self._updates.append(update)
        if self._update_event is not None:
            self._update_event.set()

    # ---- building updates ----------------------------------------------------------------
    def _update(self, **payload: Any) -> dict[str, Any]:
        return {"update_id": next(self._update_ids), **payload}

    def user_message(
        self,
        user: User,
        text: str | None = None,
        *,
        chat: Chat | None = None,
        thread_id: int | None = None,
        reply_to: dict[str, Any] | None = None,
        photo: str | None = None,
        document: str | None = None,
        caption: str | None = None,
        contact: dict[str, Any] | None = None,
        extra: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        """The update Telegram delivers when `user` writes in `chat` (default: private)."""
        chat = (
            chat
            or self.chats.get(user.id)
            or self.add_chat(Chat(id=user.id, first_name=user.first_name))
        )
        content: dict[str, Any] = {}
        if text is not None:
            content["text"] = text
            if text.startswith("/"):
                command = text.split()[0]
                content["entities"] = [{"type": "bot_command", "offset": 0, "length": len(command)}]
        if photo:
            content["photo"] = [
                {"file_id": photo, "file_unique_id": "u" + photo[-8:], "width": 800, "height": 600}
            ]
        if document:
            content["document"] = {
                "file_id": document,
                "file_unique_id": "d" + document[-8:],
                "file_name": "file.pdf",
            }
        if caption:
            content["caption"] = caption
        if contact:
            content["contact"] = contact
        content.update(extra or {})
        params: dict[str, Any] = {}
        if thread_id:
            params["message_thread_id"] = thread_id
        if reply_to:
            params["reply_parameters"] = {"message_id": reply_to["message_id"]}
        message = self._store(chat, content, params, sender=user.as_dict())
        if thread_id and chat.is_forum and reply_to is None:
            # Telegram marks a topic message as a reply to the topic's creation message.
            message["reply_to_message"] = {
                "message_id": thread_id,
                "date": message["date"],
                "chat": chat.as_dict(),
                "message_thread_id": thread_id,
                "forum_topic_created": {
                    "name": self.topics.get((chat.id, thread_id), "topic"),
                    "icon_color": 7322096,
                },
            }
        return self._update(message=message)

    def press(self, user: User, message: dict[str, Any] | Call, data: str) -> dict[str, Any]:
        """The update for `user` pressing the inline button with `data` under `message`."""
        if isinstance(message, Call):
            message = message.result
        query_id = str(next(self._callback_ids))
        self._open_queries.add(query_id)
        stored = self.messages.get((message["chat"]["id"], message["message_id"]), message)
        return self._update(
            callback_query={
                "id": query_id,
                "from": user.as_dict(),
                "message": stored,
                "chat_instance": f"ci{message['chat']['id']}",
                "data": data,
            }
        )

    def member_changed(
        self, chat: Chat, user: User, status: str, *, by: User | None = None
    ) -> dict[str, Any]:
        """The `chat_member` update Telegram sends (to a bot that is an administrator of the
        chat) when `user`'s status in `chat` changes to `status`; the stand-in's getChatMember
        answers the new status from now on."""
        old = self.chat_members.get((chat.id, user.id), "left")
        self.chat_members[(chat.id, user.id)] = status
        return self._update(
            chat_member={
                "chat": chat.as_dict(),
                "from": (by or user).as_dict(),
                "date": int(self.clock()),
                "old_chat_member": chat_member(old, user.as_dict()),
                "new_chat_member": chat_member(status, user.as_dict()),
            }
        )

    def pre_checkout(
        self, user: User, currency: str, total_amount: int, payload: str
    ) -> dict[str, Any]:
        query_id = f"pcq{next(self._callback_ids)}"
        return self._update(
            pre_checkout_query={
                "id": query_id,
                "from": user.as_dict(),
                "currency": currency,
                "total_amount": total_amount,
                "invoice_payload": payload,
            }
        )

    def successful_payment(
        self,
        user: User,
        currency: str,
        total_amount: int,
        payload: str,
        charge_id: str,
        provider_charge_id: str = "prov-1",
    ) -> dict[str, Any]:
        """A fresh update (new update_id) carrying the same payment: Telegram may redeliver."""
        chat = self.chats.get(user.id) or self.add_chat(Chat(id=user.id))
        message = self._store(
            chat,
            {
                "successful_payment": {
                    "currency": currency,
                    "total_amount": total_amount,
                    "invoice_payload": payload,
                    "telegram_payment_charge_id": charge_id,
                    "provider_payment_charge_id": provider_charge_id,
                }
            },
            {},
            sender=user.as_dict(),
        )
        return self._update(message=message)
