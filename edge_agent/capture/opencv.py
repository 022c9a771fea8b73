"""OpenCV capture: USB/V4L2 cameras, RTSP streams and video files.

Live sources (cameras, streams) are read by a background thread into a one-frame slot, so the
pipeline always gets the newest frame and stale ones are dropped and counted rather than
queued. Files are read in order, every frame, optionally paced at their native frame rate;
a file can also be played "as if live" (paced, latest-frame-only) to rehearse a camera.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Iterator
from typing import Literal

import cv2

from edge_agent.capture.frame import CaptureError, Clock, Frame, ensure_bgr, utc_now
from edge_agent.capture.latest import LatestSlot

log = logging.getLogger(__name__)

SourceKind = Literal["device", "stream", "file"]


def redact_url(target: object) -> str:
    """Hide ``user:password@`` in stream URLs so credentials never reach logs or errors."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", str(target))


class OpenCVSource:
    """A ``FrameSource`` over ``cv2.VideoCapture``."""

    def __init__(
        self,
        target: int | str,
        kind: SourceKind,
        *,
        width: int | None = None,
        height: int | None = None,
        fps: float | None = None,
        live: bool | None = None,
        pace: bool = False,
        fourcc: str | None = None,
        reconnect_attempts: int = 5,
        reconnect_delay_s: float = 1.0,
        clock: Clock = utc_now,
    ) -> None:
        self.target = target
        self.kind = kind
        self.live = (kind != "file") if live is None else live
        self.pace = pace or (self.live and kind == "file")  # a file played live must run at camera speed
        self._want = (width, height, fps, fourcc)
        self._reconnect_attempts = reconnect_attempts
        self._reconnect_delay_s = reconnect_delay_s
        self._clock = clock
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._started = False
        self._cap = self._open()
        native_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = native_fps if native_fps > 0 else (float(fps) if fps else None)
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.size: tuple[int, int] | None = (w, h) if w > 0 and h > 0 else None
        frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if kind == "file" else 0
        self.frame_count: int | None = frame_count if frame_count > 0 else None

    # -- opening ---------------------------------------------------------------------------
    def _open(self) -> cv2.VideoCapture:
        api = {"device": cv2.CAP_V4L2, "stream": cv2.CAP_FFMPEG, "file": cv2.CAP_ANY}[self.kind]
        cap = cv2.VideoCapture(self.target, api)
        if not cap.isOpened():
            cap.release()
            hint = {
                "device": "check the camera is plugged in, that /dev/video* exists and that the agent's user is in the 'video' group",
                "stream": "check the URL, the network path to the camera and the stream credentials",
                "file": "check the path exists and is a video OpenCV can decode (e.g. MJPG/H.264 in avi/mp4)",
            }[self.kind]
            raise CaptureError(f"cannot open {self.kind} {redact_url(self.target)}", hint)
        width, height, fps, fourcc = self._want
        if self.kind == "device":
            if fourcc:
                cap.set(cv2.CAP_PROP_FOURCC, cv2.VideoWriter.fourcc(*fourcc))
            if width and height:
                cap.set(cv2.CAP_PROP_FRAME_WIDTH, width)
                cap.set(cv2.CAP_PROP_FRAME_HEIGHT, height)
            if fps:
                cap.set(cv2.CAP_PROP_FPS, fps)
        if self.kind != "file":
            cap.set(cv2.CAP_PROP_BUFFERSIZE, 1)  # ask the driver not to queue either
        return cap

    # -- FrameSource -----------------------------------------------------------------------
    def __enter__(self) -> OpenCVSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    @property
    def pending(self) -> int:
        """Frames waiting for the consumer (live mode): never more than 1."""
        return self._slot.depth

    def frames(self) -> Iterator[Frame]:
        if self._started:
            raise CaptureError(f"frames() already called on {redact_url(self.target)}", "open a new source to read again")
        self._started = True
        if not self.live:
            yield from self._read_in_order()
            return
        self._thread = threading.Thread(target=self._reader, name=f"capture-{self.kind}", daemon=True)
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
            self._thread.join(timeout=5.0)
            if self._thread.is_alive():
                log.warning("capture thread for %s did not stop within 5 s", redact_url(self.target))
                return  # the thread still owns the capture; it releases it when read() returns
        self._cap.release()

    # -- reading ---------------------------------------------------------------------------
    def _frame(self, image, index: int) -> Frame:
        source_time = None
        if self.kind == "file":
            source_time = index / self.fps if self.fps else float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        return Frame(ensure_bgr(image, redact_url(self.target)), self._clock(), index, source_time)

    def _read_in_order(self) -> Iterator[Frame]:
        start = time.monotonic()
        index = 0
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if not ok or image is None:
                return
            if self.pace and self.fps:
                delay = start + index / self.fps - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield self._frame(image, index)
            index += 1

    def _reader(self) -> None:
        """Reader thread: keep only the newest frame; reconnect live streams that drop out."""
        start = time.monotonic()
        index = 0
        failures = 0
        try:
            while not self._stop.is_set():
                ok, image = self._cap.read()
                if not ok or image is None:
                    if self.kind == "file":
                        break  # end of a rehearsal file
                    failures += 1
                    if failures > self._reconnect_attempts:
                        raise CaptureError(
                            f"{self.kind} {redact_url(self.target)} stopped delivering frames "
                            f"({self._reconnect_attempts} reconnect attempts failed)",
                            "check the camera/stream; systemd restarts the agent when it exits",
                        )
                    log.warning("no frame from %s; reconnecting (%d/%d)", redact_url(self.target), failures, self._reconnect_attempts)
                    self._stop.wait(self._reconnect_delay_s)
                    self._cap.release()
                    try:
                        self._cap = self._open()
                    except CaptureError:
                        pass  # counted as a failure on the next read
                    continue
                failures = 0
                if self.pace and self.fps:
                    delay = start + index / self.fps - time.monotonic()
                    if delay > 0 and self._stop.wait(delay):
                        break
                self._slot.put(self._frame(image, index))
                index += 1
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, which re-raises it)
            self._slot.fail(exc)
        finally:
            self._slot.close()
            if self._stop.is_set():
                self._cap.release()
