"""DTOs shared by every domain of the billing interface."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar

T = TypeVar("T")
F = TypeVar("F", bound=Callable[..., Any])

READ_ONLY_MARK = "__billing_read_only__"
SCAN_MARK = "__billing_scan__"


def read_only(method: F) -> F:
    """Marks a billing method that only reads: the bot runs it in a read-only transaction,
    which never takes SQLite's write lock (and PostgreSQL refuses a write in it)."""
    setattr(method, READ_ONLY_MARK, True)
    return method


def is_read_only(method: object) -> bool:
    return bool(getattr(method, READ_ONLY_MARK, False))


def scan(method: F) -> F:
    """Marks a read-only billing method that may read many rows (a whole audience, a search,
    a due list). Where short reads run on the event loop (the embedded billing on SQLite), a
    scan still runs on a worker thread, so the bot keeps answering while it reads."""
    setattr(method, SCAN_MARK, True)
    return read_only(method)


def is_scan(method: object) -> bool:
    return bool(getattr(method, SCAN_MARK, False))


@dataclass(frozen=True, slots=True)
class Page(Generic[T]):
    items: list[T]
    total: int
    offset: int
    limit: int

    @property
    def has_prev(self) -> bool:
        return self.offset > 0

    @property
    def has_next(self) -> bool:
        return self.offset + self.limit < self.total

    @property
    def page_number(self) -> int:
        return self.offset // self.limit + 1 if self.limit else 1

    @property
    def page_count(self) -> int:
        return max(1, -(-self.total // self.limit)) if self.limit else 1


@dataclass(frozen=True, slots=True)
class Money:
    minor: int
    currency: str


@dataclass(frozen=True, slots=True)
class Account:
    id: int
    telegram_id: int | None
    chat_id: int | None
    login: str
    language: str | None
    currency: str  # display ("site") currency chosen by the user
    balance_minor: int  # base currency
    base_currency: str
    created_at: datetime
    telegram_name: str = ""
    unreachable: bool = False
    # False when an external billing could not be asked (it is down): balance_minor is then the
    # last one seen, or 0 when none was; screens say the balance is unavailable.
    balance_known: bool = True
    # The IANA zone alerts are dated and timed in (the bot's own setting); None: the default.
    timezone: str | None = None
    # False while the Telegram user is not linked to a client of an external billing (the
    # embedded billing's accounts always are): the same answer as `is_linked`, read with the
    # account so that the screens every update shows need no call of their own.
    linked: bool = True


@dataclass(frozen=True, slots=True)
class LedgerLine:
    id: int
    amount_minor: int
    currency: str
    balance_after_minor: int
    kind: str
    description: str
    reference: str | None
    created_at: datetime
    actor: str | None = None


@dataclass(frozen=True, slots=True)
class TariffPrice:
    months: int
    price_minor: int  # base currency


@dataclass(frozen=True, slots=True)
class Tariff:
    id: int
    code: str
    product_type: str
    name: str
    specs: str
    prices: list[TariffPrice] = field(default_factory=list)

    def price_for(self, months: int) -> int | None:
        return next((p.price_minor for p in self.prices if p.months == months), None)
