"""Replay sources for retrospective (RFR) work: a directory of stills or a recorded video.

Replays are read in order and never drop frames because nobody is waiting on them; a bad
file in a folder of stills is reported and skipped so one corrupt JPEG does not stop a search.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import cv2
import numpy as np

from edge_agent.capture.base import SequentialSource
from edge_agent.capture.frame import CaptureError, Clock, Frame, ensure_bgr, utc_now
from edge_agent.errors import EdgeAgentError

log = logging.getLogger(__name__)

IMAGE_SUFFIXES = frozenset({".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff", ".ppm", ".pgm"})


def _natural_key(path: Path) -> list[object]:
    """frame2.jpg sorts before frame10.jpg."""
    return [int(part) if part.isdigit() else part.lower() for part in re.split(r"(\d+)", path.name)]


def _read_still(path: Path) -> np.ndarray:
    """Decode one still; raise on anything unreadable (shared reader when the vision package has it)."""
    try:
        from edge_agent.vision.image_io import read_image
    except ImportError:
        pass
    else:
        return read_image(path)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise CaptureError(f"{path} is not a readable image", "remove or replace the file")
    return image


class ImageDirectorySource(SequentialSource):
    """Every image file in a directory, in natural name order; ``index`` is the position in ``paths``."""

    def __init__(self, directory: str | Path, *, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        self.directory = Path(directory)
        if not self.directory.is_dir():
            raise CaptureError(f"{self.directory} is not a directory", "give a folder of .jpg/.png images")
        self.paths: list[Path] = sorted(
            (p for p in self.directory.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES),
            key=_natural_key,
        )
        if not self.paths:
            raise CaptureError(
                f"{self.directory} holds no image files",
                f"accepted extensions: {', '.join(sorted(IMAGE_SUFFIXES))}",
            )
        self.skipped: list[Path] = []
        self._next = 0

    def describe(self) -> str:
        return f"image folder {self.directory}"

    def path_of(self, index: int) -> Path:
        """The file a frame came from, for the investigator's candidate list."""
        return self.paths[index]

    def _read(self) -> Frame | None:
        while self._next < len(self.paths):
            index, path = self._next, self.paths[self._next]
            self._next += 1
            try:
                image = ensure_bgr(_read_still(path), str(path))
            except (EdgeAgentError, OSError) as exc:
                log.warning("skipping unreadable image %s: %s", path, exc)
                self.skipped.append(path)
                continue
            return Frame(image, self._clock(), index, None)
        return None


class VideoReplaySource(SequentialSource):
    """A recorded video read in order, optionally sampled down to ``sample_fps``.

    Sampling skips frames with ``grab()`` (no decode to pixels) so a long recording can be
    searched at, say, 5 frames per second; ``source_time_s`` says where each frame sits.
    """

    def __init__(self, path: str | Path, *, sample_fps: float | None = None, clock: Clock = utc_now) -> None:
        super().__init__(clock=clock)
        self.path = Path(path)
        if not self.path.is_file():
            raise CaptureError(f"video {self.path} not found", "check the path")
        if sample_fps is not None and sample_fps <= 0:
            raise CaptureError(f"sample_fps must be > 0, got {sample_fps}", "omit it to read every frame")
        self._cap = cv2.VideoCapture(str(self.path), cv2.CAP_ANY)
        if not self._cap.isOpened():
            self._cap.release()
            raise CaptureError(f"cannot decode video {self.path}", "check it is a video OpenCV can read (avi/mp4)")
        native = float(self._cap.get(cv2.CAP_PROP_FPS) or 0.0)
        self.native_fps: float | None = native if native > 0 else None
        self.sample_fps = sample_fps
        self.fps: float | None = min(sample_fps, native) if (sample_fps and native) else (sample_fps or self.native_fps)
        w = int(self._cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0)
        h = int(self._cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0)
        self.size: tuple[int, int] | None = (w, h) if w and h else None
        step = (self.native_fps / self.sample_fps) if (self.sample_fps and self.native_fps) else 1.0
        self._step = max(step, 1.0)
        self._next_wanted = 0.0
        self._position = 0  # index of the next frame in the file

    def describe(self) -> str:
        return f"video {self.path}"

    def _read(self) -> Frame | None:
        while self._position + 0.5 < self._next_wanted:
            if not self._cap.grab():
                return None
            self._position += 1
        ok, image = self._cap.read()
        if not ok or image is None:
            return None
        position = self._position
        t = position / self.native_fps if self.native_fps else float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
        self._position += 1
        self._next_wanted += self._step
        return Frame(ensure_bgr(image, str(self.path)), self._clock(), position, t)

    def _release(self) -> None:
        self._cap.release()
