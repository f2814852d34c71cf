"""The Orders section: the paginated list (search, sort), an order's details and its actions —
renew, change tariff, cancel, resume, auto-renew. Every action re-reads the order through the
billing (which checks it is the caller's); forged or stale buttons get an alert and change
nothing.

This module composes the section's routers:
- handlers/orders_list.py: the list, its search, sort and pages;
- handlers/orders_order.py: one order's details, cancel, resume and auto-renew;
- handlers/orders_renew.py: renewing an order;
- handlers/orders_tariff.py: changing an order's tariff;
- handlers/orders_common.py: what they share (details screen, price format)."""

from __future__ import annotations

from aiogram import F, Router

from handlers import orders_list, orders_order, orders_renew, orders_tariff


def create_router() -> Router:
    router = Router(name="orders")
    # Checked before any sub-router's handlers: the section serves private chats only.
    router.message.filter(F.chat.type == "private")
    router.callback_query.filter(F.message.chat.type == "private")
    router.include_router(orders_list.create_router())
    router.include_router(orders_order.create_router())
    router.include_router(orders_renew.create_router())
    router.include_router(orders_tariff.create_router())
    return router
