"""`python -m bot` runs the bot; `python -m bot migrate` only applies migrations;
`python -m bot link-token <client_id> [hours]` prints a one-time deep link that links a
Telegram user to that WHMCS client (services/whmcs/linking.py); `python -m bot check`
validates the configuration and connects to the database, Redis and the Bot API (exit 0/1);
`python -m bot healthcheck` asks the running bot's /healthz (the image's HEALTHCHECK)."""

from __future__ import annotations

import asyncio
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
    if argv[:1] == ["check"]:
        return check()
    if argv[:1] == ["healthcheck"]:
        return healthcheck()
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
    username = (settings.bot_username or "").strip().lstrip("@")
    if username:
        print(f"https://t.me/{username}?start={token}")
    return 0


def check() -> int:
    """For a deploy pipeline: each line says what was found; exit 0, or 1 on any failure."""
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"FAIL configuration: {exc}")
        return 1
    print(
        f"ok   configuration: {'webhook' if settings.webhook_mode else 'polling'} mode, "
        f"billing {settings.billing}"
    )
    from bot.checks import run_checks

    results = asyncio.run(run_checks(settings))
    for ok, line in results:
        print(f"{'ok  ' if ok else 'FAIL'} {line}")
    return 0 if all(ok for ok, _line in results) else 1


def healthcheck() -> int:
    """Exit 0 when the running bot's /healthz answers 200 (on the address the settings give
    it), else 1. Silent: Docker keeps what it prints with each probe."""
    from urllib.request import urlopen

    try:
        host, port = load_settings().ops_address
    except ConfigError:
        return 1
    host = {"0.0.0.0": "127.0.0.1", "": "127.0.0.1", "::": "::1"}.get(host, host)
    netloc = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    try:
        with urlopen(f"http://{netloc}/healthz", timeout=3) as response:
            return 0 if response.status == 200 else 1
    except OSError:
        return 1


def event_loop_factory() -> Callable[[], asyncio.AbstractEventLoop] | None:
    """uvloop where it is installed (Linux, macOS: a dependency there), else asyncio's own."""
    try:
        import uvloop
    except ImportError:
        return None
    return uvloop.new_event_loop


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
