"""The one frame type every capture source yields, and the protocol the pipeline codes against.

Keeping a single interface means the pipeline never knows whether frames come from a Pi
camera, a USB webcam, an RTSP stream, a video file or a folder of stills.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol, runtime_checkable

import numpy as np

from edge_agent.errors import EdgeAgentError

Clock = Callable[[], datetime]


def utc_now() -> datetime:
    return datetime.now(UTC)


class CaptureError(EdgeAgentError):
    """A camera, stream, file or directory cannot be opened or stopped delivering frames."""


@dataclass(frozen=True)
class Frame:
    """One captured image.

    ``image`` is BGR uint8 HxWx3 (OpenCV's order) whatever the source delivered.
    ``captured_at`` is when the agent received it (UTC); ``source_time_s`` is the position
    inside a video or replay (None for live cameras), which retrospective search reports.
    """

    image: np.ndarray
    captured_at: datetime
    index: int
    source_time_s: float | None = None

    def __post_init__(self) -> None:
        img = self.image
        if not isinstance(img, np.ndarray) or img.dtype != np.uint8 or img.ndim != 3 or img.shape[2] != 3:
            raise CaptureError(
                f"frame {self.index} is not a BGR uint8 HxWx3 image "
                f"(got {getattr(img, 'dtype', type(img).__name__)} {getattr(img, 'shape', '')})",
                "this is a bug in the capture source; report it",
            )
        if self.captured_at.tzinfo is None or self.captured_at.utcoffset() != UTC.utcoffset(None):
            raise CaptureError(f"frame {self.index} captured_at must be timezone-aware UTC", "pass a UTC clock")

    @property
    def size(self) -> tuple[int, int]:
        """(width, height) in pixels."""
        return int(self.image.shape[1]), int(self.image.shape[0])


@runtime_checkable
class FrameSource(Protocol):
    """What the pipeline needs from any source: iterate frames, then close.

    ``fps`` and ``size`` are None when the source cannot tell in advance.
    ``dropped`` counts frames a live source discarded because the consumer was busy.
    """

    fps: float | None
    size: tuple[int, int] | None

    def frames(self) -> Iterator[Frame]: ...

    def close(self) -> None: ...

    @property
    def dropped(self) -> int: ...

    def __enter__(self) -> FrameSource: ...

    def __exit__(self, *exc: object) -> None: ...


def ensure_bgr(image: np.ndarray, what: str) -> np.ndarray:
    """Turn grey or BGRA arrays from odd sources into contiguous BGR uint8."""
    import cv2

    if image.dtype != np.uint8:
        raise CaptureError(f"{what} delivered {image.dtype} pixels, expected uint8", "configure the source for 8-bit colour")
    if image.ndim == 2:
        return cv2.cvtColor(image, cv2.COLOR_GRAY2BGR)
    if image.ndim == 3 and image.shape[2] == 4:
        return np.ascontiguousarray(image[:, :, :3])
    if image.ndim == 3 and image.shape[2] == 3:
        return np.ascontiguousarray(image)
    raise CaptureError(f"{what} delivered an array of shape {image.shape}", "configure the source for colour frames")
