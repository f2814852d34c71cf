"""Synchronous filters run on the event loop instead of a worker thread.

aiogram 3 calls every synchronous callable it is given — `F` expressions (their `resolve`),
FSM `State` objects, plain filter functions — through `asyncio.to_thread`
(`aiogram.dispatcher.event.handler.CallableObject.call`). An update that walks past a few
routers thus makes several thread round trips, each handing the GIL to a worker and back;
on this bot that was four per `/menu` and about a third of its CPU. Our synchronous filters
are attribute and equality checks that never block, so the dispatcher built by
`bot.factory.create_dispatcher` wraps each of them in a coroutine function that calls it
directly. Handlers are always coroutine functions here (tests/test_inline_filters.py checks
both).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any, Literal

from aiogram import Router
from aiogram.dispatcher.event.handler import CallableObject, FilterObject
from aiogram.filters.callback_data import CallbackQueryFilter
from aiogram.types import CallbackQuery

SEPARATOR = ":"  # CallbackData's default __separator__, which every factory here keeps


def _on_loop(callable_object: CallableObject) -> None:
    sync = callable_object.callback

    async def call_on_loop(*args: Any, **kwargs: Any) -> Any:
        return sync(*args, **kwargs)

    # `params`/`varkw` stay those of the wrapped callable, so it gets the same arguments.
    callable_object.callback = call_on_loop
    callable_object.awaitable = True


def all_filters(router: Router) -> Iterator[FilterObject]:
    """Every filter of the router tree: router-wide ones (`router.message.filter(...)`,
    kept by aiogram on the observer's own handler object) and each handler's."""
    for observer in router.observers.values():
        yield from observer._handler.filters or []  # router-wide filters live here
        for handler in observer.handlers:
            yield from handler.filters or []
    for sub_router in router.sub_routers:
        yield from all_filters(sub_router)


def run_sync_filters_on_loop(router: Router) -> int:
    """Makes every synchronous filter under `router` run on the event loop; returns how many."""
    count = 0
    for filter_object in all_filters(router):
        if not filter_object.awaitable:
            _on_loop(filter_object)
            count += 1
    return count


def _callback_prefixes(router: Router) -> frozenset[str] | None:
    """The CallbackData prefixes every callback handler under `router` requires, or None when
    one of them takes a callback without such a filter (it may take any data)."""
    prefixes: set[str] = set()
    for handler in router.callback_query.handlers:
        found = [
            f.callback.callback_data.__prefix__
            for f in handler.filters or []
            if isinstance(f.callback, CallbackQueryFilter)
        ]
        if not found:
            return None
        prefixes.update(found)
    for sub_router in router.sub_routers:
        below = _callback_prefixes(sub_router)
        if below is None:
            return None
        prefixes |= below
    return frozenset(prefixes)


def _prefix_filter(prefixes: frozenset[str]) -> Any:
    async def has_prefix(query: CallbackQuery) -> bool:
        return (query.data or "").partition(SEPARATOR)[0] in prefixes

    return has_prefix


def skip_routers_by_callback_prefix(router: Router) -> int:
    """Gives each router whose callback handlers all want CallbackData a router-wide filter on
    the data's prefix, so a button press skips the routers that cannot take it with one check
    instead of unpacking its data once per handler (about 45 per press, each failing with an
    exception). Returns how many routers got one."""
    prefixes = _callback_prefixes(router)
    if prefixes and router.parent_router is not None:
        router.callback_query.filter(_prefix_filter(prefixes))
        return 1
    return sum(skip_routers_by_callback_prefix(sub) for sub in router.sub_routers)


class PrefixFirstFilter(CallbackQueryFilter):
    """aiogram's CallbackData filter that compares the data's prefix before unpacking it (a
    subclass, so what inspects the handlers still sees which factory each one takes)."""

    __slots__ = ()

    async def __call__(self, query: CallbackQuery) -> Literal[False] | dict[str, Any]:
        data = getattr(query, "data", None)
        if not data or data.partition(SEPARATOR)[0] != self.callback_data.__prefix__:
            return False
        return await super().__call__(query)


def check_callback_prefixes_first(router: Router) -> int:
    """Each CallbackData filter under `router` compares the data's prefix before unpacking it:
    a press meets a few dozen filters of other factories on its way, and aiogram's unpack
    refuses those by raising. Returns how many filters it changed."""
    count = 0
    for filter_object in all_filters(router):
        original = filter_object.callback
        if isinstance(original, CallbackQueryFilter) and not isinstance(
            original, PrefixFirstFilter
        ):
            # `params`/`awaitable` stay those of the original: the same signature.
            filter_object.callback = PrefixFirstFilter(
                callback_data=original.callback_data, rule=original.rule
            )
            count += 1
    return count
