"""Which interface language a person gets."""

from __future__ import annotations

SUPPORTED_LANGUAGES = ("en", "ru")


def pick_language(account_language: str | None, telegram_language: str | None, default: str) -> str:
    """The account's choice, else Telegram's language_code (ru-RU → ru), else the default."""
    if account_language in SUPPORTED_LANGUAGES:
        return account_language
    return supported_language(telegram_language) or default


def supported_language(telegram_language: str | None) -> str | None:
    """Telegram's language_code as one of ours (ru-RU → ru), or None."""
    code = (telegram_language or "").split("-")[0].lower()
    return code if code in SUPPORTED_LANGUAGES else None
