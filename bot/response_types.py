"""Keeps aiogram's parsed-response models alive.

aiogram builds `Response[<return type>]` for every answer from Telegram; pydantic caches such
parametrized models only weakly, and under a busy process the garbage collector keeps freeing
them, so a fresh model class (schema and validator) was built again and again — about a fifth
of the CPU of an update. Building each once at start and holding it keeps the cache warm.
"""

from __future__ import annotations

from typing import Any

from aiogram import methods
from aiogram.methods.base import Response, TelegramMethod

_KEPT: list[Any] = []


def keep_response_types() -> None:
    if _KEPT:
        return
    for cls in vars(methods).values():
        if isinstance(cls, type) and issubclass(cls, TelegramMethod) and cls is not TelegramMethod:
            returning = getattr(cls, "__returning__", None)
            if returning is not None:
                _KEPT.append(Response[returning])  # type: ignore[valid-type]
