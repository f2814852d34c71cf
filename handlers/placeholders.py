"""Screens for sections that are not built yet: reachable, with a way back, never silent.
A section's own router replaces its entry here when it lands."""

from __future__ import annotations

from aiogram import F, Router
from aiogram.filters import Command
from aiogram.types import CallbackQuery, Message
from aiogram.utils.i18n import gettext as _

from handlers.common import show
from keyboards.callbacks import MenuCb
from keyboards.menu import back_to_menu_kb

# section -> command that opens it
PENDING_SECTIONS: dict[str, str] = {}


async def pending_section(event: Message | CallbackQuery) -> None:
    await show(event, _("🚧 This section is coming soon."), back_to_menu_kb())


def create_router() -> Router:
    router = Router(name="placeholders")
    router.message.filter(F.chat.type == "private")
    sections = list(PENDING_SECTIONS)
    if not sections:  # every section has landed
        return router
    router.message.register(pending_section, Command(*PENDING_SECTIONS.values()))
    router.callback_query.register(pending_section, MenuCb.filter(F.section.in_(sections)))
    return router
