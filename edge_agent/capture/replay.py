"""Replay sources for retrospective (RFR) work: a directory of stills or a recorded video.

Replays are read in order and never drop frames because nobody is waiting on them; a bad
file in a folder of stills is reported and skipped so one corrupt JPEG does not stop a search.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from pathlib import Path

import cv2
import numpy as np

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
        read_image = None
    if read_image is not None:
        return read_image(path)
    data = np.fromfile(path, dtype=np.uint8)
    image = cv2.imdecode(data, cv2.IMREAD_COLOR) if data.size else None
    if image is None:
        raise CaptureError(f"{path} is not a readable image", "remove or replace the file")
    return image


class ImageDirectorySource:
    """Every image file in a directory, in natural name order; ``index`` is the position in ``paths``."""

    fps: float | None = None

    def __init__(self, directory: str | Path, *, clock: Clock = utc_now) -> None:
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
        self.size: tuple[int, int] | None = None
        self.skipped: list[Path] = []
        self._clock = clock

    def __enter__(self) -> ImageDirectorySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        return 0

    def path_of(self, index: int) -> Path:
        """The file a frame came from, for the investigator's candidate list."""
        return self.paths[index]

    def frames(self) -> Iterator[Frame]:
        for index, path in enumerate(self.paths):
            try:
                image = ensure_bgr(_read_still(path), str(path))
            except (EdgeAgentError, OSError) as exc:
                log.warning("skipping unreadable image %s: %s", path, exc)
                self.skipped.append(path)
                continue
            yield Frame(image, self._clock(), index, None)

    def close(self) -> None:
        pass


class VideoReplaySource:
    """A recorded video read in order, optionally sampled down to ``sample_fps``.

    Sampling skips frames with ``grab()`` (no decode to pixels) so a long recording can be
    searched at, say, 5 frames per second; ``source_time_s`` says where each frame sits.
    """

    def __init__(self, path: str | Path, *, sample_fps: float | None = None, clock: Clock = utc_now) -> None:
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
        self._clock = clock

    def __enter__(self) -> VideoReplaySource:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def dropped(self) -> int:
        return 0

    def frames(self) -> Iterator[Frame]:
        step = (self.native_fps / self.sample_fps) if (self.sample_fps and self.native_fps) else 1.0
        step = max(step, 1.0)
        next_wanted = 0.0
        position = 0  # index of the next frame in the file
        while True:
            if position + 0.5 < next_wanted:
                if not self._cap.grab():
                    return
                position += 1
                continue
            ok, image = self._cap.read()
            if not ok or image is None:
                return
            t = position / self.native_fps if self.native_fps else float(self._cap.get(cv2.CAP_PROP_POS_MSEC)) / 1000.0
            yield Frame(ensure_bgr(image, str(self.path)), self._clock(), position, t)
            position += 1
            next_wanted += step

    def close(self) -> None:
        self._cap.release()
