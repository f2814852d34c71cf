"""One Router per section. Order matters: errors first, fallback last."""

from __future__ import annotations

from aiogram import Router


def section_routers() -> list[Router]:
    """Fresh routers for one Dispatcher (a Router can belong to one parent only)."""
    from handlers import (
        balance,
        broadcast,
        errors,
        fallback,
        invoices,
        linking,
        menu,
        new_order,
        orders,
        payments,
        settings,
        staff,
        tickets,
    )

    return [
        errors.create_router(),
        linking.create_router(),  # before the menu: `/start <token>` is a deep link
        settings.create_cancel_router(),  # before the menu: /cancel returns to the screen edited
        menu.create_router(),
        tickets.create_router(),
        staff.create_router(),
        settings.create_router(),
        orders.create_router(),
        new_order.create_router(),
        broadcast.create_router(),
        balance.create_router(),
        invoices.create_router(),
        payments.create_router(),
        fallback.create_router(),
    ]
