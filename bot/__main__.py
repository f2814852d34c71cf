"""`python -m bot` runs the bot; `python -m bot migrate` only applies migrations."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable

from bot.config import ConfigError, DatabaseSettings, load_settings
from bot.logging_setup import configure_logging


def main(argv: list[str]) -> int:
    if argv[:1] == ["migrate"]:  # needs only the database, not a bot token
        from services.embedded.db import migrate

        asyncio.run(migrate(DatabaseSettings().database_url))
        return 0
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    configure_logging(settings)  # personal data and secrets never reach a log line
    from bot.runners import run_polling, run_webhook

    runner = run_webhook if settings.webhook_mode else run_polling
    try:
        with asyncio.Runner(loop_factory=event_loop_factory()) as loop_runner:
            loop_runner.run(runner(settings))
    except KeyboardInterrupt:
        pass
    return 0


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS: a dependency there), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
