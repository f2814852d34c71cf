"""`python -m bot` runs the bot; `python -m bot migrate` only applies migrations;
`python -m bot link-token <client_id> [hours]` prints a one-time deep link that links a
Telegram user to that WHMCS client (services/whmcs/linking.py)."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from datetime import timedelta

from bot.config import ConfigError, DatabaseSettings, load_settings
from bot.logging_setup import configure_logging


def main(argv: list[str]) -> int:
    if argv[:1] == ["migrate"]:  # needs only the database, not a bot token
        from services.embedded.db import migrate

        asyncio.run(migrate(DatabaseSettings().database_url))
        return 0
    if argv[:1] == ["link-token"]:
        return link_token(argv[1:])
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


def link_token(args: list[str]) -> int:
    """Print a deep-link token for a WHMCS client id (and the t.me link when BOT_USERNAME is
    set: the bot's username is unknown offline). Needs LINK_TOKEN_SECRET."""
    from services.whmcs.linking import issue_link_token

    if not 1 <= len(args) <= 2 or not all(arg.isascii() and arg.isdigit() for arg in args):
        print("usage: python -m bot link-token <client_id> [valid_hours]", file=sys.stderr)
        return 2
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(exc, file=sys.stderr)
        return 2
    secret = settings.link_token_secret
    if secret is None:
        print("LINK_TOKEN_SECRET is not set", file=sys.stderr)
        return 2
    hours = int(args[1]) if len(args) > 1 else 24
    if not 1 <= hours <= 24 * 366:
        print("valid_hours must be 1..8784", file=sys.stderr)
        return 2
    try:
        token = issue_link_token(secret.get_secret_value(), int(args[0]), timedelta(hours=hours))
    except ValueError as exc:
        print(exc, file=sys.stderr)
        return 2
    print(token)
    username = os.environ.get("BOT_USERNAME", "").strip().lstrip("@")
    if username:
        print(f"https://t.me/{username}?start={token}")
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
