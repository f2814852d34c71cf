"""One Router per section. Order matters: errors first, fallback last."""

from __future__ import annotations

from aiogram import Router


def section_routers() -> list[Router]:
    """Fresh routers for one Dispatcher (a Router can belong to one parent only)."""
    from handlers import errors, fallback, menu, placeholders

    return [
        errors.create_router(),
        menu.create_router(),
        placeholders.create_router(),
        fallback.create_router(),
    ]
