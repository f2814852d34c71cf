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
from typing import Any

from aiogram import Router
from aiogram.dispatcher.event.handler import CallableObject, FilterObject


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
