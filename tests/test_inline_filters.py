"""Synchronous filters run on the event loop: no thread round trip per update."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from bot.factory import create_dispatcher, create_gateway
from bot.inline_filters import all_filters
from tests.conftest import make_settings
from tests.harness.driver import BotDriver


def test_the_production_dispatcher_has_no_filter_or_handler_aiogram_would_run_in_a_thread(
    sqlite_url: str,
) -> None:
    settings = make_settings(sqlite_url)
    dp = create_dispatcher(settings, create_gateway(settings))
    filters = list(all_filters(dp))
    assert len(filters) > 50  # the walk reaches the section routers' filters
    assert [f.callback for f in filters if not f.awaitable] == []

    def handlers(router: Any) -> list[Any]:
        found = [h for o in router.observers.values() for h in o.handlers]
        return found + [h for sub in router.sub_routers for h in handlers(sub)]

    assert [h.callback for h in handlers(dp) if not h.awaitable] == []


async def test_menu_and_a_button_make_no_thread_round_trip(
    driver: BotDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    user = driver.user(7301)
    await driver.send(user, "/menu")  # the account exists now
    hops: list[Any] = []
    to_thread = asyncio.to_thread

    async def counting(func: Any, *args: Any, **kwargs: Any) -> Any:
        hops.append(func)
        return await to_thread(func, *args, **kwargs)

    monkeypatch.setattr(asyncio, "to_thread", counting)
    calls = await driver.send(user, "/menu")
    await driver.click(user, calls[-1], "📦 Orders")
    assert hops == []


def test_routers_are_skipped_by_callback_prefix_only_when_every_handler_wants_one() -> None:
    from aiogram import Dispatcher, F, Router

    from bot.inline_filters import skip_routers_by_callback_prefix
    from keyboards.callbacks import LangCb, MenuCb

    dp = Dispatcher()
    typed, mixed = Router(name="typed"), Router(name="mixed")

    async def handler(query: Any) -> None:
        return None

    typed.callback_query.register(handler, MenuCb.filter())
    typed.callback_query.register(handler, LangCb.filter(F.code == "ru"))
    mixed.callback_query.register(handler, MenuCb.filter())
    mixed.callback_query.register(handler, F.data == "noop")  # any data: never skipped
    dp.include_routers(typed, mixed)

    assert skip_routers_by_callback_prefix(dp) == 1
    assert len(typed.callback_query._handler.filters or []) == 1
    assert not mixed.callback_query._handler.filters


async def test_a_press_is_checked_by_the_filters_of_its_own_routers_only(
    driver: BotDriver, monkeypatch: pytest.MonkeyPatch
) -> None:
    from aiogram.filters.callback_data import CallbackData

    user = driver.user(7302)
    calls = await driver.send(user, "/menu")
    unpacked: list[str] = []
    unpack = CallbackData.unpack.__func__  # type: ignore[attr-defined]

    def counting(cls: type[CallbackData], value: str) -> Any:
        unpacked.append(cls.__prefix__)
        return unpack(cls, value)

    monkeypatch.setattr(CallbackData, "unpack", classmethod(counting))
    await driver.click(user, calls[-1], "📦 Orders")
    # Only "menu" filters unpack the press (42 filters of every prefix did before)
    assert unpacked and set(unpacked) == {"menu"}, unpacked
