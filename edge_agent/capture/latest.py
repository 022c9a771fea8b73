"""A one-frame mailbox between a camera reader thread and the pipeline.

A live camera does not wait for us: if the pipeline is slower than the sensor, a queue would
grow without bound and every alert would be later than the last. Holding only the newest
frame (and counting what was overwritten) keeps latency bounded by one frame.
"""

from __future__ import annotations

import threading
from typing import Generic, TypeVar

T = TypeVar("T")


class LatestSlot(Generic[T]):
    """Holds at most one item; ``put`` replaces an unread item and counts it as dropped."""

    def __init__(self) -> None:
        self._cond = threading.Condition()
        self._item: T | None = None
        self._has_item = False
        self._closed = False
        self._dropped = 0
        self._error: BaseException | None = None

    def put(self, item: T) -> None:
        with self._cond:
            if self._has_item:
                self._dropped += 1
            self._item = item
            self._has_item = True
            self._cond.notify_all()

    def fail(self, error: BaseException) -> None:
        """Hand the reader thread's error to the consumer, which re-raises it."""
        with self._cond:
            self._error = error
            self._closed = True
            self._cond.notify_all()

    def close(self) -> None:
        """No more items will come; a waiting ``get`` returns None once the slot is empty."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    def get(self, timeout: float | None = None) -> T | None:
        """The newest unread item; None when closed and drained (or on timeout)."""
        with self._cond:
            if not self._cond.wait_for(lambda: self._has_item or self._closed, timeout=timeout):
                return None
            if self._has_item:
                item = self._item
                self._item = None
                self._has_item = False
                return item
            if self._error is not None:
                raise self._error
            return None

    @property
    def depth(self) -> int:
        """Unread items held: 0 or 1 by construction."""
        with self._cond:
            return 1 if self._has_item else 0

    @property
    def dropped(self) -> int:
        with self._cond:
            return self._dropped

    @property
    def closed(self) -> bool:
        with self._cond:
            return self._closed
