"""Logging of `python -m bot`: one handler on the root logger whose lines never carry personal
data or secrets.

- The database drivers' own loggers (aiosqlite logs every call with its arguments at DEBUG,
  asyncpg's pool) stay at WARNING whatever LOG_LEVEL is; so does SQLAlchemy, whose engine at
  DEBUG would print result rows. LOG_SQL=true logs the statements (INFO), never their values:
  the engines are created with hide_parameters=True (services/embedded/db.py).
- `services.privacy.RedactingFilter` on the handler masks any e-mail address or phone number
  left in a line and replaces the bot token and the other configured secrets by ***.
- LOG_FORMAT=json: one JSON object per line (`JsonFormatter`): timestamp, level, logger,
  message, exception, and the context of the update or job the line was written for
  (`LogContext`: update, user and chat ids, handler, job; set by bot/metrics.py). Ids only: a
  name, a username or a message text is never a context field.
"""

from __future__ import annotations

import json
import logging
import sys
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TextIO
from urllib.parse import urlsplit

from bot.config import Settings
from services.privacy import RedactingFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that print statement arguments or rows below WARNING.
QUIET_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy")
SQL_LOGGER = "sqlalchemy.engine"


@dataclass(slots=True)
class LogContext:
    """What a log line was written for. bot/metrics.py sets one per update (an update's task
    keeps it to the end, so aiogram's own "Update id=... is handled" line carries it too) and
    one per scheduled job run."""

    update_id: int | None = None
    user_id: int | None = None
    chat_id: int | None = None
    handler: str | None = None
    job: str | None = None


LOG_CONTEXT: ContextVar[LogContext | None] = ContextVar("log_context", default=None)
CONTEXT_FIELDS = ("update_id", "user_id", "chat_id", "handler", "job")


class JsonFormatter(logging.Formatter):
    """One JSON object per line. The record reaches it through RedactingFilter: its message
    and exception text are already redacted."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, object] = {
            "timestamp": datetime.fromtimestamp(record.created, UTC).isoformat(
                timespec="milliseconds"
            ),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        context = LOG_CONTEXT.get()
        if context is not None:
            for name in CONTEXT_FIELDS:
                value = getattr(context, name)
                if value is not None:
                    line[name] = value
        if record.exc_info and not record.exc_text:
            record.exc_text = self.formatException(record.exc_info)
        if record.exc_text:
            line["exception"] = record.exc_text
        if record.stack_info:
            line["stack"] = record.stack_info
        return json.dumps(line, ensure_ascii=False, default=str)


class _BotHandler(logging.StreamHandler):
    """Marks the handler this module installed, so configuring again replaces it."""


def secrets_of(settings: Settings) -> list[str]:
    """Values that must never appear in a log line."""
    values = []
    for secret in (
        settings.bot_token,
        settings.webhook_secret,
        settings.payment_provider_token,
        settings.smtp_password,
        settings.whmcs_secret,
        settings.whmcs_access_key,
        settings.link_token_secret,
    ):
        if secret is not None:
            values.append(secret.get_secret_value())
    token = settings.bot_token.get_secret_value()
    values.append(token.partition(":")[2])  # the secret half of the token, wherever it shows
    for url in (settings.database_url, settings.redis_url):  # passwords inside the URLs
        password = urlsplit(url).password if url else None
        if password:
            values.append(password)
    return values


def configure_logging(settings: Settings, stream: TextIO | None = None) -> logging.Handler:
    root = logging.getLogger()
    for old in [h for h in root.handlers if isinstance(h, _BotHandler)]:
        root.removeHandler(old)
    handler = _BotHandler(stream or sys.stderr)
    json_lines = settings.log_format == "json"
    handler.setFormatter(JsonFormatter() if json_lines else logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter(secrets_of(settings)))
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger(SQL_LOGGER).setLevel(logging.INFO if settings.log_sql else logging.WARNING)
    return handler
