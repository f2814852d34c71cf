"""Runners: long polling (default) or webhook on aiohttp; graceful shutdown in both. Both run
the aiohttp server with /healthz, /readyz and /metrics (bot/health.py) on WEB_HOST:WEB_PORT,
or on METRICS_HOST:METRICS_PORT when that is set."""

from __future__ import annotations

import asyncio
import gc
import hmac
import logging
import secrets
import signal
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.types import Update
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot import metrics
from bot.commands import register_commands
from bot.config import Settings
from bot.factory import (
    billing_jobs,
    check_billing_setup,
    create_billing_gateway,
    create_bot,
    create_dispatcher,
    create_gateway,
)
from bot.health import OpsState, add_ops_routes, create_ops_app, use_redis
from bot.inbox import replay_payment_updates
from bot.scheduler import add_jobs, create_scheduler
from bot.web.app import add_web, set_menu_button
from services.embedded.billing import EmbeddedGateway
from services.embedded.db import alembic_config, migrate

log = logging.getLogger(__name__)

WEBHOOK_REPLAY_GRACE_SECONDS = 60
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def migration_heads(database_url: str) -> frozenset[str]:
    from alembic.script import ScriptDirectory

    return frozenset(ScriptDirectory.from_config(alembic_config(database_url)).get_heads())


def create_ops_state(settings: Settings, local: EmbeddedGateway) -> OpsState:
    """What /readyz checks: the bot's own database (its read-only pool: a check never waits
    for the write lock), its schema against the migrations' head, and Redis when configured."""
    state = OpsState(engine=local.read_engine, heads=migration_heads(settings.database_url))
    if settings.redis_url:
        use_redis(state, settings.redis_url)
    return state


async def start_site(app: web.Application, host: str, port: int) -> web.AppRunner:
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, host, port).start()
    return runner


async def prepare(settings: Settings) -> tuple[Bot, Dispatcher]:
    await migrate(settings.database_url)
    local = create_gateway(settings)
    metrics.install("webhook" if settings.webhook_mode else "polling", settings.billing)
    ops = create_ops_state(settings, local)
    if settings.seed_demo_catalogue and settings.billing == "embedded":
        added = await local.seed_demo()
        if added:
            log.info("Seeded %d demo tariffs", added)
    gateway = create_billing_gateway(settings, local)
    bot = create_bot(settings)
    dp = create_dispatcher(settings, gateway)
    scheduler = create_scheduler(settings)
    dp["scheduler"] = scheduler
    dp["ops"] = ops
    jobs = add_jobs(
        scheduler,
        settings,
        gateway,
        bot,
        dp["i18n"],
        dispatcher=dp,
        billing_jobs=billing_jobs(settings, gateway, dp["i18n"]),
    )

    async def on_startup(bot: Bot) -> None:
        await check_billing_setup(gateway)
        await register_commands(
            bot,
            dp["i18n"],
            settings.default_language,
            linking=settings.billing != "embedded",
            staff_chat_id=settings.staff_chat_id,
            admin_ids=settings.admin_ids,
        )
        await replay_unanswered_payments(dp, bot, settings)
        if settings.scheduler_enabled:
            scheduler.start()

    async def on_shutdown(bot: Bot) -> None:
        ops.shutting_down = True  # /readyz answers 503 from now on
        if not await dp["inflight"].wait_idle(timeout=10):
            log.warning("Shutting down with updates still being handled")
        await jobs.stop(scheduler)  # lets running jobs finish their transaction first
        await gateway.close()
        await dp.storage.close()

    async def show_cabinet(bot: Bot) -> None:  # the Mini App, when PUBLIC_URL is set
        await set_menu_button(bot, settings, dp["i18n"])

    dp.startup.register(on_startup)
    dp.startup.register(show_cabinet)
    dp.shutdown.register(on_shutdown)
    # Everything built so far (aiogram's and pydantic's models, the catalogs, the ORM) lives as
    # long as the process: out of the collector's sight, a full collection stays short.
    gc.freeze()
    return bot, dp


async def replay_unanswered_payments(dp: Dispatcher, bot: Bot, settings: Settings) -> None:
    """Payments a killed process kept but never answered are handled again (crediting is
    idempotent). With webhooks several instances may share the work, so only updates that
    have waited a while are taken; Telegram redelivers the fresh ones itself."""
    grace = timedelta(seconds=WEBHOOK_REPLAY_GRACE_SECONDS if settings.webhook_url else 0)
    try:
        replayed = await replay_payment_updates(dp, bot, datetime.now(UTC) - grace)
    except Exception:
        log.exception("Replaying kept payment updates failed")
        return
    if replayed:
        log.warning("Replayed %d payment updates that were never answered", replayed)


async def start_polling_web(
    ops_app: web.Application, dp: Dispatcher, bot: Bot, settings: Settings
) -> web.AppRunner | None:
    """The web side (PUBLIC_URL) on WEB_HOST:WEB_PORT: beside /healthz on the ops app, or on a
    site of its own when METRICS_PORT moves the ops endpoints elsewhere."""
    if settings.metrics_port is None:
        add_web(ops_app, dp, bot)
        return None
    app = web.Application()
    if not add_web(app, dp, bot):
        return None
    return await start_site(app, settings.web_host, settings.web_port)


async def run_polling(settings: Settings) -> None:
    bot, dp = await prepare(settings)
    host, port = settings.ops_address
    ops_app = create_ops_app(dp["ops"])
    web_site = await start_polling_web(ops_app, dp, bot, settings)
    ops = await start_site(ops_app, host, port)
    log.info("Serving /healthz, /readyz and /metrics on %s:%s", host, port)
    try:
        me = await bot.get_me()
        log.info("Starting long polling as @%s", me.username)
        await bot.delete_webhook(drop_pending_updates=False)
        await dp.start_polling(bot, handle_signals=True)
    finally:
        await ops.cleanup()
        if web_site is not None:
            await web_site.cleanup()
        await dp["ops"].close()


class _RefusalLog:
    """One warning line per `interval` at most for refused webhook requests: a flood of forged
    posts must not flood the log."""

    def __init__(self, interval: float = 60.0) -> None:
        self.interval = interval
        self._next = 0.0
        self._quiet = 0

    def warn(self, reason: str, request: web.Request) -> None:
        now = time.monotonic()
        if now < self._next:
            self._quiet += 1
            return
        more = f" ({self._quiet} more refused since the last report)" if self._quiet else ""
        log.warning("Webhook request from %s refused: %s%s", request.remote, reason, more)
        self._quiet, self._next = 0, now + self.interval


class WebhookHandler(SimpleRequestHandler):
    """aiogram's SimpleRequestHandler, strict: a request without the right secret token
    (missing, wrong, not ASCII) gets 401, a body that is not an Update (malformed JSON, wrong
    shape) 400, both with one warning line and never a 500 or a traceback. Updates are handled
    inside the request, so aiohttp's graceful shutdown finishes every accepted one."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, secret_token: str, **data: Any) -> None:
        super().__init__(
            dispatcher, bot, handle_in_background=False, secret_token=secret_token, **data
        )
        self._secret = secret_token.encode("ascii")
        self._refusals = _RefusalLog()

    def verify_secret(self, telegram_secret_token: str, bot: Bot) -> bool:
        try:
            given = telegram_secret_token.encode("ascii")
        except UnicodeEncodeError:  # aiohttp hands over undecodable bytes as surrogates
            return False
        return hmac.compare_digest(given, self._secret)

    async def handle(self, request: web.Request) -> web.Response:
        bot = await self.resolve_bot(request)
        if not self.verify_secret(request.headers.get(SECRET_HEADER, ""), bot):
            self._refusals.warn("no valid secret token", request)
            return web.Response(status=401, text="Unauthorized")
        try:
            body = bot.session.json_loads(await request.read())
            update = Update.model_validate(body, context={"bot": bot})
        except (ValueError, RecursionError):  # JSON, encoding and validation errors
            self._refusals.warn("the body is not a Telegram update", request)
            return web.Response(status=400, text="Bad Request")
        result: Any = await self.dispatcher.feed_webhook_update(bot, update, **self.data)
        return web.Response(body=self._build_response_writer(bot=bot, result=result))

    __call__ = handle


def webhook_secret(settings: Settings) -> tuple[str, bool]:
    """WEBHOOK_SECRET, or a fresh random one for this run; True when it was generated."""
    if settings.webhook_secret is not None:
        return settings.webhook_secret.get_secret_value(), False
    return secrets.token_urlsafe(32), True  # 43 characters of A-Z, a-z, 0-9, _ and -


def create_webhook_app(
    dp: Dispatcher, bot: Bot, settings: Settings, secret: str
) -> web.Application:
    app = web.Application()
    WebhookHandler(dispatcher=dp, bot=bot, secret_token=secret).register(
        app, path=settings.webhook_path
    )
    setup_application(app, dp, bot=bot)
    add_web(app, dp, bot)  # when PUBLIC_URL is set
    return app


async def set_webhook(bot: Bot, dp: Dispatcher, settings: Settings, secret: str) -> str:
    """Tells Telegram where to deliver, with the secret and the update types the handlers use
    (`chat_member` among them: Telegram sends it only when asked for)."""
    url = settings.webhook_url.rstrip("/") + settings.webhook_path  # type: ignore[union-attr]
    await bot.set_webhook(url, secret_token=secret, allowed_updates=dp.resolve_used_update_types())
    return url


async def run_webhook(settings: Settings) -> None:
    bot, dp = await prepare(settings)
    secret, generated = webhook_secret(settings)
    state: OpsState = dp["ops"]
    app = create_webhook_app(dp, bot, settings, secret)
    ops: web.AppRunner | None = None
    if settings.metrics_port is None:
        add_ops_routes(app, state)
    else:
        ops = await start_site(create_ops_app(state), *settings.ops_address)
    runner = await start_site(app, settings.web_host, settings.web_port)
    host, port = settings.ops_address
    log.info("Serving /healthz, /readyz and /metrics on %s:%s", host, port)
    # Only now that the port accepts connections may Telegram be told where to deliver.
    url = await set_webhook(bot, dp, settings, secret)
    log.info("Webhook set to %s", url)
    if generated:  # the secret itself is never logged
        log.info(
            "WEBHOOK_SECRET is not set: a random secret token was generated for this run and "
            "registered with setWebhook"
        )
        if settings.redis_url:
            log.warning(
                "Several bot instances need one WEBHOOK_SECRET: otherwise each generates its "
                "own, and only the one that set the webhook last accepts updates"
            )
    log.info("Listening for webhooks on %s:%s", settings.web_host, settings.web_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Shutting down")
    # /readyz answers 503 while the updates being handled finish (the port stays open, so a
    # load balancer sees it); then aiohttp's graceful shutdown and the dispatcher's.
    state.shutting_down = True
    if not await dp["inflight"].wait_idle(timeout=10):
        log.warning("Updates still being handled after 10 s")
    await runner.cleanup()
    if ops is not None:
        await ops.cleanup()
    await state.close()
