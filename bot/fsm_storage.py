"""FSM storage without Redis: aiogram's MemoryStorage keeps every dialog forever (and makes an
entry for every user it is merely asked about). `ExpiringMemoryStorage` forgets a dialog —
its state and data together — `ttl` seconds after its last change, as RedisStorage does with
state_ttl/data_ttl, and never holds more than `max_records` of them: memory stays bounded by
the users active within the TTL."""

from __future__ import annotations

import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from copy import copy
from dataclasses import dataclass, field
from typing import Any

from aiogram.exceptions import DataNotDictLikeError
from aiogram.fsm.state import State
from aiogram.fsm.storage.base import BaseStorage, StateType, StorageKey

MAX_RECORDS = 100_000


@dataclass
class _Record:
    state: str | None = None
    data: dict[str, Any] = field(default_factory=dict)
    changed_at: float = 0.0


class ExpiringMemoryStorage(BaseStorage):
    def __init__(
        self,
        ttl: float,
        *,
        max_records: int = MAX_RECORDS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if ttl <= 0:
            raise ValueError("ttl must be positive")
        self.ttl = ttl
        self.max_records = max_records
        self.clock = clock
        # Oldest change first: every write moves its record to the end, so expired records
        # are always at the front and forgetting them costs nothing to look for.
        self.records: OrderedDict[StorageKey, _Record] = OrderedDict()

    def _forget_expired(self) -> None:
        deadline = self.clock() - self.ttl
        while self.records:
            oldest = next(iter(self.records.values()))
            if oldest.changed_at > deadline:
                break
            self.records.popitem(last=False)

    def _live(self, key: StorageKey) -> _Record | None:
        self._forget_expired()
        return self.records.get(key)

    def _write(self, key: StorageKey, record: _Record) -> None:
        self.records.pop(key, None)
        if record.state is None and not record.data:
            return  # nothing left to remember
        record.changed_at = self.clock()
        self.records[key] = record
        while len(self.records) > self.max_records:
            self.records.popitem(last=False)

    async def set_state(self, key: StorageKey, state: StateType = None) -> None:
        record = self._live(key) or _Record()
        record.state = state.state if isinstance(state, State) else state
        self._write(key, record)

    async def get_state(self, key: StorageKey) -> str | None:
        record = self._live(key)
        return record.state if record else None

    async def set_data(self, key: StorageKey, data: Mapping[str, Any]) -> None:
        if not isinstance(data, dict):
            msg = f"Data must be a dict or dict-like object, got {type(data).__name__}"
            raise DataNotDictLikeError(msg)
        record = self._live(key) or _Record()
        record.data = data.copy()
        self._write(key, record)

    async def get_data(self, key: StorageKey) -> dict[str, Any]:
        record = self._live(key)
        return record.data.copy() if record else {}

    async def get_value(
        self, storage_key: StorageKey, dict_key: str, default: Any | None = None
    ) -> Any | None:
        record = self._live(storage_key)
        return copy(record.data.get(dict_key, default)) if record else default

    async def close(self) -> None:
        self.records.clear()
