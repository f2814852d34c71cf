"""Logging of `python -m bot`: one handler on the root logger whose lines never carry personal
data or secrets.

- The database drivers' own loggers (aiosqlite logs every call with its arguments at DEBUG,
  asyncpg's pool) stay at WARNING whatever LOG_LEVEL is; so does SQLAlchemy, whose engine at
  DEBUG would print result rows. LOG_SQL=true logs the statements (INFO), never their values:
  the engines are created with hide_parameters=True (services/embedded/db.py).
- `services.privacy.RedactingFilter` on the handler masks any e-mail address or phone number
  left in a line and replaces the bot token and the other configured secrets by ***.
"""

from __future__ import annotations

import logging
import sys
from typing import TextIO
from urllib.parse import urlsplit

from bot.config import Settings
from services.privacy import RedactingFilter

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
# Loggers that print statement arguments or rows below WARNING.
QUIET_LOGGERS = ("aiosqlite", "asyncpg", "sqlalchemy")
SQL_LOGGER = "sqlalchemy.engine"


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
    handler.setFormatter(logging.Formatter(FORMAT))
    handler.addFilter(RedactingFilter(secrets_of(settings)))
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    for name in QUIET_LOGGERS:
        logging.getLogger(name).setLevel(logging.WARNING)
    logging.getLogger(SQL_LOGGER).setLevel(logging.INFO if settings.log_sql else logging.WARNING)
    return handler
