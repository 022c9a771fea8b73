"""The two shapes every frame source takes, so each source writes only how it reads one frame.

A replay (folder of stills, recorded video) is read in order on the consumer's thread and never
drops a frame: nobody is waiting on it. A live source (camera, stream, a file rehearsed as a
camera) does not wait for us, so a reader thread keeps only the newest frame in a one-frame slot
and counts what it overwrote (``capture/latest.py``). The bases own the thread, the slot, the
"read once" rule, pacing and closing; a source implements ``_read()`` (the next frame, None at
the end) and ``_release()`` (free the device or file). The split follows picamera2's
``encoders/encoder.py``: the base holds the lock and the thread, subclasses do one step.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Iterator

from edge_agent.capture.frame import CaptureError, Clock, Frame, utc_now
from edge_agent.capture.latest import LatestSlot

log = logging.getLogger(__name__)


class SequentialSource:
    """A ``FrameSource`` read in order on the caller's thread; optionally paced at ``pace_fps``.

    Subclasses implement ``_read`` and ``_release``; ``describe`` names the source in messages.
    """

    fps: float | None = None
    size: tuple[int, int] | None = None

    def __init__(self, *, clock: Clock = utc_now) -> None:
        self._clock = clock
        self._stop = threading.Event()
        self._started = False
        self._released = False
        self._release_lock = threading.Lock()
        self.pace_fps: float | None = None  # set by a source that must run at camera speed

    # -- what a source implements ------------------------------------------------------------
    def _read(self) -> Frame | None:
        """The next frame, or None when the source has no more; raise CaptureError on failure."""
        raise NotImplementedError

    def _release(self) -> None:
        """Free the camera, stream or file. Called once, after the last ``_read``."""

    def describe(self) -> str:
        return type(self).__name__

    # -- FrameSource ---------------------------------------------------------------------------
    def __enter__(self) -> SequentialSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        """A source read in order drops nothing."""
        return 0

    def frames(self) -> Iterator[Frame]:
        self._claim()
        yield from self._paced(self._frames_in_order())

    def close(self) -> None:
        self._stop.set()
        self._release_once()

    # -- shared machinery ----------------------------------------------------------------------
    def _claim(self) -> None:
        if self._started:
            raise CaptureError(f"frames() already called on {self.describe()}", "open a new source to read again")
        self._started = True

    def _frames_in_order(self) -> Iterator[Frame]:
        while not self._stop.is_set():
            frame = self._read()
            if frame is None:
                return
            yield frame

    def _paced(self, frames: Iterator[Frame]) -> Iterator[Frame]:
        """Hold frame n back until n / pace_fps seconds after the first; stop early on close."""
        if not self.pace_fps:
            yield from frames
            return
        start = time.monotonic()
        for n, frame in enumerate(frames):
            delay = start + n / self.pace_fps - time.monotonic()
            if delay > 0 and self._stop.wait(delay):
                return
            yield frame

    def _release_once(self) -> None:
        with self._release_lock:
            if self._released:
                return
            self._released = True
        self._release()


class ThreadedSource(SequentialSource):
    """A live ``FrameSource``: a reader thread puts each frame into a one-frame slot.

    ``live = False`` reads in order on the caller's thread instead (a file read every frame).
    ``release_while_reading``: whether ``close`` may free the device while a ``_read`` is still
    blocked in the thread (picamera2's ``stop`` is what unblocks ``capture_array``; releasing an
    OpenCV capture under a reading thread is not safe, so the thread releases it when it ends).
    """

    live: bool = True
    release_while_reading: bool = False
    join_timeout_s: float = 5.0

    def __init__(self, *, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._thread: threading.Thread | None = None

    def _reader_failed(self, exc: BaseException) -> BaseException:
        """The error the consumer sees when ``_read`` raised in the reader thread."""
        return exc

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    @property
    def pending(self) -> int:
        """Frames waiting for the consumer (live mode): never more than 1."""
        return self._slot.depth

    def frames(self) -> Iterator[Frame]:
        if not self.live:
            yield from super().frames()
            return
        self._claim()
        self._thread = threading.Thread(target=self._reader, name=f"capture-{self.describe()}", daemon=True)
        self._thread.start()
        while True:
            frame = self._slot.get()
            if frame is None:
                return
            yield frame

    def close(self) -> None:
        self._stop.set()
        self._slot.close()
        if self._thread is not None:
            self._thread.join(timeout=self.join_timeout_s)
            if self._thread.is_alive():
                log.warning("capture thread for %s did not stop within %.0f s", self.describe(), self.join_timeout_s)
                if not self.release_while_reading:
                    return  # the thread still owns the device; it releases it when _read returns
        self._release_once()

    def _reader(self) -> None:
        """Reader thread: keep only the newest frame; hand any failure to the consumer."""
        try:
            for frame in self._paced(self._frames_in_order()):
                self._slot.put(frame)
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, which re-raises it)
            if not self._stop.is_set():
                self._slot.fail(self._reader_failed(exc))
        finally:
            self._slot.close()
            if self._stop.is_set():
                self._release_once()
