"""Runners: long polling (default) or webhook on aiohttp; graceful shutdown in both."""

from __future__ import annotations

import asyncio
import gc
import logging
import signal
from datetime import UTC, datetime, timedelta

from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler, setup_application
from aiohttp import web

from bot.commands import register_commands
from bot.config import Settings
from bot.factory import create_bot, create_dispatcher, create_gateway
from bot.inbox import replay_payment_updates
from bot.scheduler import add_jobs, create_scheduler
from services.embedded.db import migrate

log = logging.getLogger(__name__)

WEBHOOK_REPLAY_GRACE_SECONDS = 60


async def prepare(settings: Settings) -> tuple[Bot, Dispatcher]:
    await migrate(settings.database_url)
    gateway = create_gateway(settings)
    if settings.seed_demo_catalogue:
        added = await gateway.seed_demo()
        if added:
            log.info("Seeded %d demo tariffs", added)
    bot = create_bot(settings)
    dp = create_dispatcher(settings, gateway)
    scheduler = create_scheduler(settings)
    dp["scheduler"] = scheduler
    jobs = add_jobs(scheduler, settings, gateway, bot, dp["i18n"])

    async def on_startup(bot: Bot) -> None:
        await register_commands(bot, dp["i18n"], settings.default_language)
        await replay_unanswered_payments(dp, bot, settings)
        if settings.scheduler_enabled:
            scheduler.start()

    async def on_shutdown(bot: Bot) -> None:
        if not await dp["inflight"].wait_idle(timeout=10):
            log.warning("Shutting down with updates still being handled")
        await jobs.stop(scheduler)  # lets running jobs finish their transaction first
        await gateway.close()
        await dp.storage.close()

    dp.startup.register(on_startup)
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


async def run_polling(settings: Settings) -> None:
    bot, dp = await prepare(settings)
    me = await bot.get_me()
    log.info("Starting long polling as @%s", me.username)
    await bot.delete_webhook(drop_pending_updates=False)
    await dp.start_polling(bot, handle_signals=True)


async def run_webhook(settings: Settings) -> None:
    bot, dp = await prepare(settings)
    secret = settings.webhook_secret.get_secret_value() if settings.webhook_secret else None
    app = web.Application()
    # Handling inside the request (not in a background task) lets aiohttp's graceful shutdown
    # finish every update that was already accepted before the bot session closes.
    SimpleRequestHandler(
        dispatcher=dp, bot=bot, secret_token=secret, handle_in_background=False
    ).register(app, path=settings.webhook_path)
    setup_application(app, dp, bot=bot)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, settings.web_host, settings.web_port)
    await site.start()
    # Only now that the port accepts connections may Telegram be told where to deliver.
    url = settings.webhook_url.rstrip("/") + settings.webhook_path  # type: ignore[union-attr]
    await bot.set_webhook(url, secret_token=secret, allowed_updates=dp.resolve_used_update_types())
    log.info("Webhook set to %s", url)
    log.info("Listening for webhooks on %s:%s", settings.web_host, settings.web_port)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    await stop.wait()
    log.info("Shutting down")
    await runner.cleanup()
