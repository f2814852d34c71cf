"""Scheduler wiring: APScheduler runs the plain async jobs of services/ on intervals.

Every job runs under a job lease (a row in job_leases) so that with several bot instances each
tick runs once; the outbox sender runs under its own lease because Telegram's limits are per
bot, not per instance. Jobs get their dependencies bound here and the time of the tick; the
settings reach services as typed policy objects built here (services never import bot)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, time, timedelta
from functools import partial
from typing import Any

from aiogram import Bot, Dispatcher
from aiogram.utils.i18n import I18n
from apscheduler.schedulers.asyncio import AsyncIOScheduler

import keyboards.alerts
from bot.config import Settings
from bot.inbox import replay_when_reachable
from bot.metrics import instrument_job
from services.alerts import AlertPolicy, run_alert_jobs
from services.billing import BillingGateway
from services.email import Mailer
from services.outbox import OutboxSender, SendLimits, default_owner
from services.rates import RatesConfig, refresh_rates

log = logging.getLogger(__name__)

Job = Callable[[datetime], Awaitable[Any]]

PAYMENT_REPLAY_SECONDS = 60.0
# Only updates kept this long ago are replayed: one still being handled is never taken twice
# (longer than a handler waits on an external billing).
PAYMENT_REPLAY_GRACE = timedelta(seconds=120)


def parse_quiet_hours(text: str) -> tuple[time | None, time | None]:
    """'22:00-09:00' -> (22:00, 09:00); '' -> (None, None)."""
    if not text or not text.strip():
        return None, None
    first, _sep, last = text.strip().partition("-")
    return time.fromisoformat(first.strip()), time.fromisoformat(last.strip())


def alert_policy(settings: Settings, *, email_unreachable: bool = False) -> AlertPolicy:
    """What the alert jobs need from the settings (validated there: stages, quiet hours);
    `email_unreachable`: the sender e-mails the alerts of customers who blocked the bot."""
    start, end = parse_quiet_hours(settings.quiet_hours)
    return AlertPolicy(
        stages=tuple(sorted(set(settings.expiry_alert_stages), reverse=True)),
        grace=timedelta(days=settings.overdue_grace_days),
        renew_lead=timedelta(hours=settings.auto_renew_lead_hours),
        quiet_start=start,
        quiet_end=end,
        default_timezone=settings.default_timezone,
        default_language=settings.default_language,
        base_currency=settings.default_currency,
        email_unreachable=email_unreachable,
    )


def send_limits(settings: Settings) -> SendLimits:
    return SendLimits(
        global_per_second=settings.sender_global_per_second,
        chat_interval=settings.sender_chat_interval_seconds,
        group_per_minute=settings.sender_group_per_minute,
    )


def rates_config(settings: Settings) -> RatesConfig:
    return RatesConfig(
        base_currency=settings.default_currency,
        currencies=tuple(settings.currencies),
        ecb_url=settings.rates_ecb_url,
        cbr_url=settings.rates_cbr_url,
        timeout_seconds=settings.rates_timeout_seconds,
    )


def create_scheduler(settings: Settings) -> AsyncIOScheduler:
    # The sender runs every second: APScheduler's per-run INFO lines would flood the log.
    logging.getLogger("apscheduler.executors.default").setLevel(logging.WARNING)
    # coalescing and max_instances=1 keep one run of a job at a time within an instance;
    # job leases keep one run per tick across instances.
    return AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )


def leased(
    gateway: BillingGateway,
    name: str,
    owner: str,
    interval: float,
    job: Job,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    in_progress: set[str] | None = None,
) -> Callable[[], Awaitable[bool]]:
    """Run `job(now)` only when this instance takes the named lease for (most of) one
    interval; returns whether it ran. While the run is under way its name is in `in_progress`
    (ScheduledJobs.stop gives the lease of a run it cut short back); a finished run keeps the
    lease until it expires, so the job runs once per interval across instances."""
    ttl = timedelta(seconds=max(interval * 0.9, 1.0))

    async def run() -> bool:
        now = clock()
        async with gateway.transaction() as billing:
            if not await billing.acquire_job_lease(name, owner, now, ttl):
                return False
        if in_progress is not None:
            in_progress.add(name)
        try:
            await job(now)
        except Exception:
            log.exception("Scheduled job %s failed", name)
        # Not in a finally: a cancelled run (cut short, or a crash) stays in progress.
        if in_progress is not None:
            in_progress.discard(name)
        return True

    run.__name__ = f"leased_{name}"
    return run


class RunningJobs:
    """The tasks of job runs in progress, so that shutdown can let them finish (APScheduler's
    asyncio executor would cancel them mid-transaction)."""

    def __init__(self) -> None:
        self.tasks: set[asyncio.Task[Any]] = set()

    def track(self, job: Callable[[], Awaitable[Any]]) -> Callable[[], Awaitable[Any]]:
        async def run() -> Any:
            task = asyncio.current_task()
            if task is not None:
                self.tasks.add(task)
            try:
                return await job()
            finally:
                self.tasks.discard(task)

        run.__name__ = getattr(job, "__name__", "job")
        return run

    async def wait(self, timeout: float) -> None:
        if self.tasks:
            await asyncio.wait(set(self.tasks), timeout=timeout)


@dataclass
class ScheduledJobs:
    sender: OutboxSender
    running: RunningJobs = field(default_factory=RunningJobs)
    in_progress: set[str] = field(default_factory=set)
    """Leased jobs with a run under way; their leases are the sender's owner's (add_jobs)."""
    policy: AlertPolicy = field(default_factory=AlertPolicy)  # what the alert job runs with

    async def stop(self, scheduler: AsyncIOScheduler, timeout: float = 5.0) -> None:
        """No new runs; the sender starts no new call, lets its calls in flight finish and
        gives its unsent rows back; running jobs get `timeout` to finish (the rest are
        cancelled: their transactions roll back, nothing half-done is committed). Then the
        leases are given back — the sender's, and those of runs cut short — so that another
        instance takes over at its next tick instead of when they expire."""
        if not scheduler.running:
            return
        scheduler.pause()
        self.sender.stop()
        await self.running.wait(timeout)
        scheduler.shutdown(wait=False)
        await self.running.wait(1.0)  # the cancelled runs unwind (roll back, give rows back)
        await self.release_leases()

    async def release_leases(self) -> None:
        """Each in its own short transaction, after every run (and API call) has ended. A
        failure is only logged: the lease then expires on its own, and shutdown goes on."""
        try:
            await self.sender.close()
        except Exception:
            log.exception("The sender lease was not released")
        for name in sorted(self.in_progress):
            try:
                async with self.sender.gateway.transaction() as billing:
                    await billing.release_job_lease(name, self.sender.owner)
            except Exception:
                log.exception("Job lease %s was not released", name)
        self.in_progress.clear()


def create_sender(
    settings: Settings,
    gateway: BillingGateway,
    bot: Bot,
    i18n: I18n,
    owner: str | None = None,
    mailer: Mailer | None = None,
) -> OutboxSender:
    from handlers.broadcast import report_progress

    return OutboxSender(
        gateway,
        bot,
        limits=send_limits(settings),
        owner=owner,
        progress=partial(report_progress, i18n=i18n),
        progress_interval=settings.broadcast_progress_interval_seconds,
        mailer=mailer,  # alerts of chats that blocked the bot go by e-mail
    )


async def replay_job(dp: Dispatcher, bot: Bot, now: datetime) -> int:
    """The embedded billing never leaves a payment unanswered but for a crash (replayed on
    start); an external one does while it is unavailable."""
    return await replay_when_reachable(dp, bot, now - PAYMENT_REPLAY_GRACE)


def add_jobs(
    scheduler: AsyncIOScheduler,
    settings: Settings,
    gateway: BillingGateway,
    bot: Bot,
    i18n: I18n,
    *,
    dispatcher: Dispatcher | None = None,
    billing_jobs: Sequence[tuple[str, float, Job]] = (),
) -> ScheduledJobs:
    """Register every periodic job; the result stops them gracefully (and serves tests).
    With the `dispatcher` and an external billing, payments kept while the billing was
    unavailable are replayed every minute (see bot/inbox.py::replay_when_reachable)."""
    from handlers.staff import remind_unanswered

    owner = default_owner()
    mailer = dispatcher.get("mailer") if dispatcher is not None else None
    sender = create_sender(settings, gateway, bot, i18n, owner, mailer)
    jobs = ScheduledJobs(sender)

    def every(name: str, seconds: float, job: Job) -> None:
        scheduler.add_job(
            jobs.running.track(
                leased(
                    gateway,
                    name,
                    owner,
                    seconds,
                    instrument_job(name, job),  # counted, timed, its log lines carry job=
                    in_progress=jobs.in_progress,
                )
            ),
            "interval",
            seconds=seconds,
            id=name,
            name=name,
            replace_existing=True,
        )

    jobs.policy = alert_policy(settings, email_unreachable=sender.emails is not None)
    every(
        "alerts",
        settings.alert_interval_seconds,
        partial(run_alert_jobs, gateway, i18n, jobs.policy, keyboards=keyboards.alerts),
    )
    every(
        "rates",
        settings.rates_interval_seconds,
        partial(refresh_rates, gateway, None, rates_config(settings)),
    )
    every(
        "ticket_reminders",
        settings.reminder_interval_seconds,
        lambda now: remind_unanswered(gateway, bot, settings, now, i18n),
    )
    if settings.billing == "whmcs":  # the adapter's jobs, built by the composition root
        for name, seconds, job in billing_jobs:  # (WHMCS: its ticket-reply sync)
            every(name, seconds, job)
    if dispatcher is not None and settings.billing != "embedded":
        every("payment_replay", PAYMENT_REPLAY_SECONDS, partial(replay_job, dispatcher, bot))
    scheduler.add_job(
        jobs.running.track(instrument_job("outbox", sender.tick)),
        "interval",
        seconds=settings.sender_interval_seconds,
        id="outbox",
        name="outbox",
        replace_existing=True,
    )
    return jobs
