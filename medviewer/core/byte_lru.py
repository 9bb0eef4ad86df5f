"""A least-recently-used cache bounded by the bytes of what it holds (decoded slide tiles)."""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Hashable

import numpy as np


class ByteLimitedCache:
    """Holds arrays up to ``limit_bytes``; adding past the limit drops the least recently used first."""

    def __init__(self, limit_bytes: int) -> None:
        self.limit_bytes = int(limit_bytes)
        self.bytes = 0
        self._items: OrderedDict[Hashable, np.ndarray] = OrderedDict()

    def __contains__(self, key: Hashable) -> bool:
        return key in self._items

    def __len__(self) -> int:
        return len(self._items)

    def get(self, key: Hashable) -> np.ndarray | None:
        value = self._items.get(key)
        if value is not None:
            self._items.move_to_end(key)
        return value

    def put(self, key: Hashable, value: np.ndarray) -> list[Hashable]:
        """Store ``value``; returns the keys evicted to make room."""
        if key in self._items:
            self.bytes -= self._items.pop(key).nbytes
        self._items[key] = value
        self.bytes += value.nbytes
        evicted = []
        while self.bytes > self.limit_bytes and len(self._items) > 1:
            old_key, old = self._items.popitem(last=False)
            self.bytes -= old.nbytes
            evicted.append(old_key)
        return evicted

    def clear(self) -> None:
        self._items.clear()
        self.bytes = 0
