"""Scheduler wiring: APScheduler runs the plain async jobs of services/ on intervals."""

from __future__ import annotations

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.config import Settings


def create_scheduler(settings: Settings) -> AsyncIOScheduler:
    # Jobs are added by bot.runners.startup with their dependencies bound; coalescing and
    # max_instances=1 keep one run of a job at a time within an instance.
    return AsyncIOScheduler(
        timezone="UTC",
        job_defaults={"coalesce": True, "max_instances": 1, "misfire_grace_time": 60},
    )
