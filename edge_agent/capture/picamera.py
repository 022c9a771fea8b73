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

import numpy as np

from edge_agent.capture.base import ThreadedSource
from edge_agent.capture.frame import CaptureError, Clock, Frame, utc_now
from edge_agent.errors import EdgeAgentError
from edge_agent.identifiers import PIXEL_FORMATS


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


class PiCameraSource(ThreadedSource):
    """A ``FrameSource`` over a CSI camera; a reader thread keeps only the newest frame."""

    release_while_reading = True  # Picamera2.stop() is what unblocks a waiting capture_array
    join_timeout_s = 2.0

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
        super().__init__(clock=clock)
        Picamera2 = _import_picamera2()
        self.camera_num = camera_num
        self.pixel_format = pixel_format
        self.size: tuple[int, int] | None = (width, height)
        self.fps: float | None = fps
        self._index = 0
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

    def describe(self) -> str:
        return f"Pi camera {self.camera_num}"

    def _read(self) -> Frame:
        array = self._cam.capture_array("main")  # blocks until the next sensor frame
        frame = Frame(to_bgr(array, self.pixel_format), self._clock(), self._index, None)
        self._index += 1
        return frame

    def _reader_failed(self, exc: BaseException) -> BaseException:
        return CaptureError(f"Pi camera {self.camera_num} failed: {exc}", "the agent exits; systemd restarts it")

    def _release(self) -> None:
        try:
            self._cam.stop()
        finally:
            self._cam.close()
