"""The two source bases: what every source gets without writing it (one read, one release, errors
handed to the consumer, the latest-frame rule)."""

from __future__ import annotations

import threading
from datetime import UTC, datetime

import numpy as np
import pytest

from edge_agent.capture import CaptureError, Frame, FrameSource
from edge_agent.capture.base import SequentialSource, ThreadedSource


class Counting(ThreadedSource):
    """Frames 0..n-1, then the end (or ``fail_at`` raises); counts releases."""

    def __init__(self, n: int, *, fail_at: int | None = None, live: bool = True) -> None:
        super().__init__()
        self.live = live
        self.n, self.fail_at = n, fail_at
        self.i = 0
        self.releases = 0
        self.gate = threading.Event()

    def _read(self) -> Frame | None:
        if self.i == self.fail_at:
            raise CaptureError("sensor gone", "replug it")
        if self.i >= self.n:
            return None
        frame = Frame(np.zeros((2, 2, 3), np.uint8), datetime.now(UTC), self.i)
        self.i += 1
        return frame

    def _release(self) -> None:
        self.releases += 1


def test_sequential_reads_in_order_once_and_releases_once():
    src = Counting(5, live=False)
    assert isinstance(src, FrameSource) and isinstance(src, SequentialSource)
    with src:
        assert [f.index for f in src.frames()] == [0, 1, 2, 3, 4]
        assert src.dropped == 0
        with pytest.raises(CaptureError, match="already called") as info:
            next(src.frames())
        assert info.value.hint == "open a new source to read again"
    src.close()
    assert src.releases == 1


def test_threaded_reader_error_reaches_the_consumer_and_device_is_released_once():
    src = Counting(100, fail_at=3)
    seen = []
    with pytest.raises(CaptureError, match="sensor gone"):
        with src:
            for frame in src.frames():
                seen.append(frame.index)
    assert seen and seen == sorted(set(seen)) and seen[-1] <= 2
    assert src.releases == 1


def test_threaded_every_frame_delivered_or_counted_and_close_stops_the_thread():
    src = Counting(200)
    got = 0
    with src:
        for _ in src.frames():
            got += 1
        assert got + src.dropped == 200
        assert src.pending == 0
    assert src._thread is not None and not src._thread.is_alive()
    assert src.releases == 1


def test_a_source_must_implement_read():
    class Empty(SequentialSource):
        pass

    with pytest.raises(NotImplementedError):
        list(Empty().frames())
