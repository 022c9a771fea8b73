"""OpenCV capture: USB/V4L2 cameras, RTSP streams and video files.

Live sources (cameras, streams) are read by a background thread into a one-frame slot, so the
pipeline always gets the newest frame and stale ones are dropped and counted rather than
queued. Files are read in order, every frame, optionally paced at their native frame rate;
a file can also be played "as if live" (paced, latest-frame-only) to rehearse a camera.
"""

from __future__ import annotations

import logging
import re
from typing import Literal

import cv2

from edge_agent.capture.base import ThreadedSource
from edge_agent.capture.frame import CaptureError, Clock, Frame, ensure_bgr, utc_now

log = logging.getLogger(__name__)

SourceKind = Literal["device", "stream", "file"]


def redact_url(target: object) -> str:
    """Hide ``user:password@`` in stream URLs so credentials never reach logs or errors."""
    return re.sub(r"(?<=://)[^/@\s]+@", "***@", str(target))


class OpenCVSource(ThreadedSource):
    """A ``FrameSource`` over ``cv2.VideoCapture``; live kinds reconnect when frames stop."""

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
        super().__init__(clock=clock)
        self.target = target
        self.kind = kind
        self.live = (kind != "file") if live is None else live
        self.pace = pace or (self.live and kind == "file")  # a file played live must run at camera speed
        self._want = (width, height, fps, fourcc)
        self._reconnect_attempts = reconnect_attempts
        self._reconnect_delay_s = reconnect_delay_s
        self._index = 0
        self._cap = self._open()
        native_fps = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.fps: float | None = native_fps if native_fps > 0 else (float(fps) if fps else None)
        self.pace_fps = self.fps if self.pace else None
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.size: tuple[int, int] | None = (w, h) if w > 0 and h > 0 else None
        frame_count = int(self._cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0) if kind == "file" else 0
        self.frame_count: int | None = frame_count if frame_count > 0 else None

    def describe(self) -> str:
        return f"{self.kind} {redact_url(self.target)}"

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
            raise CaptureError(f"cannot open {self.describe()}", hint)
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

    def _read(self) -> Frame | None:
        """The next frame; a file ends at its last frame, a camera or stream is reopened when it
        stops delivering, up to ``reconnect_attempts`` times in a row."""
        failures = 0
        while not self._stop.is_set():
            ok, image = self._cap.read()
            if ok and image is not None:
                return self._frame(image)
            if self.kind == "file":
                return None
            failures += 1
            if failures > self._reconnect_attempts:
                raise CaptureError(
                    f"{self.describe()} stopped delivering frames ({self._reconnect_attempts} reconnect attempts failed)",
                    "check the camera/stream; systemd restarts the agent when it exits",
                )
            log.warning("no frame from %s; reconnecting (%d/%d)", redact_url(self.target), failures, self._reconnect_attempts)
            self._stop.wait(self._reconnect_delay_s)
            self._cap.release()
            try:
                self._cap = self._open()
            except CaptureError:
                pass  # counted as a failure on the next read
        return None

    def _frame(self, image) -> Frame:
        index = self._index
        self._index += 1
        source_time = None
        if self.kind == "file":
            source_time = index / self.fps if self.fps else float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        return Frame(ensure_bgr(image, redact_url(self.target)), self._clock(), index, source_time)

    def _release(self) -> None:
        self._cap.release()
