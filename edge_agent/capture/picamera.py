"""Raspberry Pi camera modules (CSI) through picamera2/libcamera.

picamera2 only exists on Raspberry Pi OS, so it is imported when a camera is opened, never
at module import: the rest of the agent (and its tests) run anywhere.

Colour order: picamera2 names formats the libcamera/DRM way, so its "RGB888" arrays are laid
out [B, G, R] per pixel (Picamera2 manual, "Image formats") - already OpenCV's BGR. "BGR888"
is [R, G, B] and needs a swap; "XRGB8888" is [B, G, R, 255] and needs the padding dropped.
We request RGB888 so no per-frame conversion is needed on the Pi's small CPU.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Iterator

import numpy as np

from edge_agent.capture.frame import CaptureError, Clock, Frame, utc_now
from edge_agent.capture.latest import LatestSlot
from edge_agent.errors import EdgeAgentError

PIXEL_FORMATS = ("RGB888", "BGR888", "XRGB8888")


def to_bgr(array: np.ndarray, pixel_format: str) -> np.ndarray:
    """Convert a picamera2 array of ``pixel_format`` to contiguous BGR uint8."""
    if pixel_format == "RGB888":
        return np.ascontiguousarray(array)
    if pixel_format == "BGR888":
        return np.ascontiguousarray(array[:, :, ::-1])
    if pixel_format == "XRGB8888":
        return np.ascontiguousarray(array[:, :, :3])
    raise CaptureError(f"unsupported picamera2 pixel format {pixel_format!r}", f"use one of {', '.join(PIXEL_FORMATS)}")


def _import_picamera2():
    try:
        return importlib.import_module("picamera2").Picamera2
    except ImportError:
        raise EdgeAgentError(
            "picamera2 is not installed: pip install edge_agent[pi] on a Raspberry Pi",
            "on Raspberry Pi OS prefer 'sudo apt install python3-picamera2' and a venv made with "
            "--system-site-packages; on other machines use a USB camera (usb:0) or a video file",
        ) from None


class PiCameraSource:
    """A ``FrameSource`` over a CSI camera; a reader thread keeps only the newest frame."""

    def __init__(
        self,
        camera_num: int = 0,
        *,
        width: int = 1280,
        height: int = 720,
        fps: float | None = 30.0,
        pixel_format: str = "RGB888",
        clock: Clock = utc_now,
    ) -> None:
        if pixel_format not in PIXEL_FORMATS:
            raise CaptureError(f"unsupported picamera2 pixel format {pixel_format!r}", f"use one of {', '.join(PIXEL_FORMATS)}")
        Picamera2 = _import_picamera2()
        self.camera_num = camera_num
        self.pixel_format = pixel_format
        self.size: tuple[int, int] | None = (width, height)
        self.fps: float | None = fps
        self._clock = clock
        self._slot: LatestSlot[Frame] = LatestSlot()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        try:
            self._cam = Picamera2(camera_num)
            controls = {"FrameRate": float(fps)} if fps else {}
            config = self._cam.create_video_configuration(
                main={"size": (width, height), "format": pixel_format}, controls=controls
            )
            self._cam.configure(config)
            self._cam.start()
        except EdgeAgentError:
            raise
        except Exception as exc:  # libcamera raises RuntimeError/IndexError for absent or busy cameras
            raise CaptureError(
                f"cannot start Pi camera {camera_num}: {exc}",
                "check the ribbon cable, that 'rpicam-hello --list-cameras' shows it, and that no other process holds it",
            ) from exc

    def __enter__(self) -> PiCameraSource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        return self._slot.dropped

    @property
    def pending(self) -> int:
        return self._slot.depth

    def frames(self) -> Iterator[Frame]:
        if self._thread is not None:
            raise CaptureError("frames() already called on this Pi camera", "open a new source to read again")
        self._thread = threading.Thread(target=self._reader, name="capture-picamera", daemon=True)
        self._thread.start()
        while True:
            frame = self._slot.get()
            if frame is None:
                return
            yield frame

    def _reader(self) -> None:
        index = 0
        try:
            while not self._stop.is_set():
                array = self._cam.capture_array("main")  # blocks until the next sensor frame
                self._slot.put(Frame(to_bgr(array, self.pixel_format), self._clock(), index, None))
                index += 1
        except BaseException as exc:  # noqa: BLE001  (handed to the consumer, which re-raises it)
            if not self._stop.is_set():
                self._slot.fail(CaptureError(f"Pi camera {self.camera_num} failed: {exc}", "the agent exits; systemd restarts it"))
        finally:
            self._slot.close()

    def close(self) -> None:
        if self._stop.is_set():
            return
        self._stop.set()
        self._slot.close()
        if self._thread is not None:
            self._thread.join(timeout=2.0)
        try:
            self._cam.stop()
        finally:
            self._cam.close()
