"""Micro-batching policy: a batch closes at ``max_size`` items or ``max_wait_s`` after its first.

Pure logic with an injectable clock, so tests drive it without a broker.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Generic, TypeVar

T = TypeVar("T")


class Batcher(Generic[T]):
    """Collects items; :meth:`take` returns a batch once it is full or old enough."""

    def __init__(self, max_size: int, max_wait_s: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        if max_size < 1:
            raise ValueError("max_size must be >= 1")
        self.max_size = max_size
        self.max_wait_s = max_wait_s
        self._clock = clock
        self._items: list[T] = []
        self._first_at: float | None = None

    def __len__(self) -> int:
        return len(self._items)

    def add(self, item: T) -> None:
        if not self._items:
            self._first_at = self._clock()
        self._items.append(item)

    def due_in(self) -> float | None:
        """Seconds until the current batch must close (0 if now), None when empty."""
        if not self._items:
            return None
        if len(self._items) >= self.max_size:
            return 0.0
        assert self._first_at is not None
        return max(0.0, self._first_at + self.max_wait_s - self._clock())

    def ready(self) -> bool:
        due = self.due_in()
        return due is not None and due <= 0.0

    def take(self, force: bool = False) -> list[T]:
        """The next batch (at most ``max_size``) if ready, or anything pending if ``force``."""
        if not self._items or not (force or self.ready()):
            return []
        batch, self._items = self._items[:self.max_size], self._items[self.max_size:]
        # Items left over were polled later than the batch's first: they start a new clock now.
        self._first_at = self._clock() if self._items else None
        return batch

    def remove_if(self, predicate: Callable[[T], bool]) -> list[T]:
        """Drop and return pending items matching ``predicate`` (e.g. of revoked partitions)."""
        dropped = [item for item in self._items if predicate(item)]
        if dropped:
            self._items = [item for item in self._items if not predicate(item)]
            if not self._items:
                self._first_at = None
        return dropped

