"""The web side's addresses (bot/web): the Mini App's and an invoice's signed pay link, for the
bot's screens and the web pages alike. None while PUBLIC_URL is not set."""

from __future__ import annotations

import time

from bot.config import Settings
from services.web_auth import derive_secret, sign_pay_token

APP_PATH = "/app"
PAY_PATH = "/pay"
DAY = 86400


def signing_key(settings: Settings) -> bytes:
    if settings.web_secret is not None:
        return settings.web_secret.get_secret_value().encode()
    return derive_secret(settings.bot_token.get_secret_value())


def pay_url(
    settings: Settings, invoice_id: int, account_id: int, now: float | None = None
) -> str | None:
    """The signed pay link of an invoice, None while the web side is off. It works for
    WEB_PAY_LINK_DAYS days and up to one more: the expiry is rounded up to a whole UTC day, so
    the link stays the same all day (a screen shown again is not edited for a new link)."""
    if settings.public_url is None:
        return None
    today = int(now if now is not None else time.time()) // DAY
    expires = (today + settings.web_pay_link_days + 1) * DAY
    token = sign_pay_token(signing_key(settings), invoice_id, account_id, expires)
    return f"{settings.public_url}{PAY_PATH}/{token}"


def cabinet_url(settings: Settings) -> str | None:
    """The Mini App's address: Telegram opens Web Apps over https only."""
    if settings.public_url is None or not settings.public_url.startswith("https://"):
        return None
    return settings.public_url + APP_PATH
