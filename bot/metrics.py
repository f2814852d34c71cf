"""Prometheus metrics of the process (served on /metrics by bot/health.py) and the hooks that
feed them: one update middleware (also the log context of the update), one Bot API session
middleware, a wrapper for scheduled jobs and the observer services report to
(services/observers.py). Labels carry names and outcomes only, never an id, a text or a secret.

Per update the cost is a counter increment and a histogram observation (children of the
label combinations are cached); no database work happens on the update's path. The outbox
gauges are read from the database when /metrics is scraped (bot/health.py)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, ParamSpec, TypeVar, cast

from aiogram import BaseMiddleware, Bot, Dispatcher
from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.dispatcher.event.handler import HandlerObject
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import TelegramMethod
from aiogram.methods.base import Response, TelegramType
from aiogram.types import Chat, TelegramObject, Update, User
from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    PlatformCollector,
    ProcessCollector,
)

from bot.logging_setup import LOG_CONTEXT, LogContext
from services import observers

P = ParamSpec("P")
T = TypeVar("T")
Handler = Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]]
# aiogram's session middleware signature, in short names
Next = NextRequestMiddlewareType
Method = TelegramMethod
Reply = Response

REGISTRY = CollectorRegistry()
ProcessCollector(registry=REGISTRY)  # CPU seconds, resident memory, open files
PlatformCollector(registry=REGISTRY)  # the Python version

LATENCY_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0)
UNHANDLED_LABEL = "unhandled"  # no handler took the update (or a middleware dropped it)

UPDATES = Counter(
    "bot_updates",
    "Updates handled, by update type and the handler that took them",
    ["type", "handler"],
    registry=REGISTRY,
)
UPDATE_SECONDS = Histogram(
    "bot_update_duration_seconds",
    "Time from an update entering the dispatcher to its handler returning",
    ["type", "handler"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
UPDATE_ERRORS = Counter(
    "bot_update_errors",
    "Updates whose handler raised (the central error handler answered them)",
    ["type", "handler", "error"],
    registry=REGISTRY,
)
TELEGRAM_REQUESTS = Counter(
    "bot_telegram_requests",
    "Bot API calls as Telegram answered each attempt: result ok, 429, 403 or error",
    ["method", "result"],
    registry=REGISTRY,
)
MESSAGES_SENT = Counter(
    "bot_messages_sent",
    "Messages Telegram accepted (send*, copyMessage, forwardMessage), replies and outbox alike",
    ["method"],
    registry=REGISTRY,
)
OUTBOX_PENDING = Gauge(
    "bot_outbox_pending", "Outbox rows waiting to be sent (read on scrape)", registry=REGISTRY
)
OUTBOX_OLDEST_AGE = Gauge(
    "bot_outbox_oldest_pending_age_seconds",
    "Age of the oldest outbox row waiting to be sent; 0 when none waits (read on scrape)",
    registry=REGISTRY,
)
SCRAPE_ERRORS = Counter(
    "bot_metrics_scrape_errors",
    "Scrapes whose outbox query failed (the outbox gauges then keep their last values)",
    registry=REGISTRY,
)
PAYMENTS_CREDITED = Counter(
    "bot_payments_credited",
    "Payments credited to a balance (a redelivered payment is not counted again)",
    ["provider"],
    registry=REGISTRY,
)
JOB_RUNS = Counter(
    "bot_job_runs",
    "Scheduled job runs by outcome: ok, error, cancelled",
    ["job", "outcome"],
    registry=REGISTRY,
)
JOB_SECONDS = Histogram(
    "bot_job_duration_seconds",
    "Duration of scheduled job runs",
    ["job"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
BILLING_SECONDS = Histogram(
    "bot_billing_call_duration_seconds",
    "Calls to an external billing's API (WHMCS), by action",
    ["billing", "action"],
    buckets=LATENCY_BUCKETS,
    registry=REGISTRY,
)
BILLING_ERRORS = Counter(
    "bot_billing_call_errors",
    "Failed calls to an external billing's API: outcome error (an answer refusing the call) "
    "or unavailable (no answer, a 5xx)",
    ["billing", "action", "outcome"],
    registry=REGISTRY,
)
INFO = Gauge("bot_info", "Always 1: how the process runs", ["mode", "billing"], registry=REGISTRY)

SENDING_METHODS = frozenset(
    {
        "sendMessage",
        "sendPhoto",
        "sendDocument",
        "sendVideo",
        "sendAudio",
        "sendVoice",
        "sendAnimation",
        "sendSticker",
        "sendMediaGroup",
        "sendInvoice",
        "copyMessage",
        "copyMessages",
        "forwardMessage",
        "forwardMessages",
    }
)


def handler_name(handler: HandlerObject) -> str:
    """`handlers.tickets.open_ticket` -> `tickets.open_ticket`."""
    callback = handler.callback
    module = getattr(callback, "__module__", "") or ""
    name = getattr(callback, "__qualname__", None) or type(callback).__name__
    return f"{module.removeprefix('handlers.')}.{name}" if module else name


class UpdateMetrics(BaseMiddleware):
    """The outermost of the bot's update middlewares: sets the update's log context (ids and,
    once a handler took it, the handler's name) and counts and times the update."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str], tuple[Any, Any]] = {}
        self._names: dict[int, str] = {}

    def setup(self, dp: Dispatcher) -> None:
        dp.update.outer_middleware(self)
        for name, observer in dp.observers.items():
            if name not in ("update", "error"):
                observer.middleware(self.remember_handler)

    async def remember_handler(
        self, handler: Handler, event: TelegramObject, data: dict[str, Any]
    ) -> Any:
        """Inner middleware (runs once a handler's filters passed): the context learns its
        name."""
        context = LOG_CONTEXT.get()
        found = data.get("handler")
        if context is not None and isinstance(found, HandlerObject):
            key = id(found)
            name = self._names.get(key)
            if name is None:
                name = self._names[key] = handler_name(found)
            context.handler = name
        return await handler(event, data)

    def _child(self, kind: str, handler: str) -> tuple[Any, Any]:
        children = self._children.get((kind, handler))
        if children is None:
            children = (UPDATES.labels(kind, handler), UPDATE_SECONDS.labels(kind, handler))
            self._children[(kind, handler)] = children
        return children

    async def __call__(self, handler: Handler, event: TelegramObject, data: dict[str, Any]) -> Any:
        update = cast(Update, event)
        user: User | None = data.get("event_from_user")
        chat: Chat | None = data.get("event_chat")
        context = LogContext(
            update_id=update.update_id,
            user_id=user.id if user is not None else None,
            chat_id=chat.id if chat is not None else None,
        )
        # Not reset on return: aiogram logs the update's outcome after the middlewares, and
        # each update has a task of its own in both modes (polling tasks, webhook requests).
        LOG_CONTEXT.set(context)
        started = time.perf_counter()
        try:
            result = await handler(event, data)
        except Exception as exc:
            kind = _kind(update)
            name = context.handler or UNHANDLED_LABEL
            UPDATE_ERRORS.labels(kind, name, type(exc).__name__).inc()
            self._observe(kind, name, started)
            raise
        self._observe(_kind(update), context.handler or UNHANDLED_LABEL, started)
        return result

    def _observe(self, kind: str, name: str, started: float) -> None:
        count, seconds = self._child(kind, name)
        count.inc()
        seconds.observe(time.perf_counter() - started)


def _kind(update: Update) -> str:
    try:
        return update.event_type
    except Exception:  # an update type aiogram does not know
        return "unknown"


class TelegramMetrics(BaseRequestMiddleware):
    """Session middleware, installed innermost (after FlowControl): counts every attempt as
    Telegram answered it, so each 429 is counted even when FlowControl waits and retries."""

    def __init__(self) -> None:
        self._children: dict[tuple[str, str], Any] = {}

    def _count(self, method: str, result: str) -> None:
        child = self._children.get((method, result))
        if child is None:
            child = self._children[(method, result)] = TELEGRAM_REQUESTS.labels(method, result)
        child.inc()

    async def __call__(
        self, make_request: Next[TelegramType], bot: Bot, method: Method[TelegramType]
    ) -> Reply[TelegramType]:
        name = method.__api_method__
        try:
            response = await make_request(bot, method)
        except TelegramRetryAfter:
            self._count(name, "429")
            raise
        except TelegramForbiddenError:
            self._count(name, "403")
            raise
        except Exception:
            self._count(name, "error")
            raise
        self._count(name, "ok")
        if name in SENDING_METHODS:
            MESSAGES_SENT.labels(name).inc()
        return response


def instrument_job(name: str, job: Callable[P, Awaitable[T]]) -> Callable[P, Awaitable[T]]:
    """A scheduled job, counted and timed, its log lines carrying `job=name`."""
    runs = {outcome: JOB_RUNS.labels(name, outcome) for outcome in ("ok", "error", "cancelled")}
    seconds = JOB_SECONDS.labels(name)

    async def run(*args: P.args, **kwargs: P.kwargs) -> T:
        token = LOG_CONTEXT.set(LogContext(job=name))
        started = time.perf_counter()
        outcome = "error"
        try:
            result = await job(*args, **kwargs)
            outcome = "ok"
            return result
        except asyncio.CancelledError:
            outcome = "cancelled"
            raise
        finally:
            runs[outcome].inc()
            seconds.observe(time.perf_counter() - started)
            LOG_CONTEXT.reset(token)

    run.__name__ = getattr(job, "__name__", name)
    return run


class MetricsObserver(observers.Observer):
    """What services report (services/observers.py), as metrics."""

    def billing_call(self, billing: str, action: str, seconds: float, outcome: str) -> None:
        BILLING_SECONDS.labels(billing, action).observe(seconds)
        if outcome != "ok":
            BILLING_ERRORS.labels(billing, action, outcome).inc()

    def payment_credited(self, provider: str) -> None:
        PAYMENTS_CREDITED.labels(provider).inc()


def install(mode: str, billing: str) -> None:
    """Called once by the runner: services report here from now on."""
    INFO.labels(mode, billing).set(1)
    observers.install(MetricsObserver())
