"""A bare aiogram 3 bot: the yardstick bench.roundtrip measures the cabinet against.

    BOT_TOKEN=... TELEGRAM_API_URL=http://127.0.0.1:PORT python -m bench.bare_bot

Long polling with aiogram's defaults (updates handled as tasks), HTML parse mode, no database,
no middlewares of its own. It makes the same Bot API calls the cabinet makes for the two steps
the benchmark drives: `/menu` → one sendMessage with an inline keyboard; the "Orders" button →
editMessageText of that message, then answerCallbackQuery.
"""

from __future__ import annotations

import asyncio
import logging
import os

from aiogram import Bot, Dispatcher, F
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.filters import Command
from aiogram.types import CallbackQuery, InlineKeyboardButton, InlineKeyboardMarkup, Message

MENU_TEXT = (
    "💼 <b>Personal cabinet</b>\nLogin: <code>{login}</code>\nBalance: <b>€0.00</b>\n\n"
    "Choose a section:"
)
ORDERS_TEXT = "📦 You have no orders yet. Order a server in the «New order» section."
MENU_KB = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="📦 Orders", callback_data="orders")]]
)
ORDERS_KB = InlineKeyboardMarkup(
    inline_keyboard=[[InlineKeyboardButton(text="⬅️ Main menu", callback_data="menu")]]
)


async def menu(message: Message) -> None:
    login = f"tg{message.from_user.id}" if message.from_user else "-"
    await message.answer(MENU_TEXT.format(login=login), reply_markup=MENU_KB)


async def orders(query: CallbackQuery) -> None:
    if isinstance(query.message, Message):
        await query.message.edit_text(ORDERS_TEXT, reply_markup=ORDERS_KB)
    await query.answer()


def create_dispatcher() -> Dispatcher:
    dp = Dispatcher()
    dp.message.register(menu, Command("menu"))
    dp.callback_query.register(orders, F.data == "orders")
    return dp


async def run() -> None:
    api = os.environ.get("TELEGRAM_API_URL", "https://api.telegram.org")
    bot = Bot(
        token=os.environ["BOT_TOKEN"],
        session=AiohttpSession(api=TelegramAPIServer.from_base(api)),
        default=DefaultBotProperties(parse_mode=ParseMode.HTML),
    )
    await create_dispatcher().start_polling(bot)


def main() -> None:
    logging.basicConfig(
        level=os.environ.get("LOG_LEVEL", "INFO").upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    asyncio.run(run())


if __name__ == "__main__":
    main()
