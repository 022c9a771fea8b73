"""Detector tiles: run BlazeFace on overlapping crops of a large frame so distant faces stay visible.

Why: BlazeFace sees the whole frame at 192x192 (full range), so a face must cover about 1/15 of
the frame's long side to be found: ~45 px in a 640-px frame, but ~85 px at 720p and ~130 px at
1080p, while the quality gate accepts faces from 40 px. A fixed camera or CCTV search at 720p or
1080p would miss every face between those sizes. A CxR grid of overlapping tiles, plus the usual
whole-frame pass for faces too big for a tile, restores the reach at (1 + C*R) detector runs.

Faces cut by a tile's inner edge are dropped from that tile: the overlap, or the whole-frame pass,
sees them whole, and a half face would only give a bad box and bad landmarks.
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from edge_agent.errors import ConfigError

if TYPE_CHECKING:  # TileGrid is parsed by the config, which must not load OpenCV or LiteRT
    from edge_agent.vision.detector import Detection

MAX_TILES_PER_SIDE = 4
DEFAULT_OVERLAP = 0.25
EDGE_MARGIN = 0.02  # of the tile's size: a box this close to an inner edge is a cut face


@dataclass(frozen=True)
class Region:
    x: int
    y: int
    width: int
    height: int


BASE_FRAME = (640, 480)  # the frame size a single whole-frame pass covers down to ~45 px faces


@dataclass(frozen=True)
class TileGrid:
    """``cols`` x ``rows`` tiles; ``auto`` picks them per frame so each tile is about 640x480."""

    cols: int = 1
    rows: int = 1
    auto: bool = False
    overlap: float = DEFAULT_OVERLAP

    @classmethod
    def parse(cls, text: str) -> "TileGrid":
        """``"1x1"`` (off), ``"2x2"``, ``"3x2"`` ... columns x rows, each 1 to 4; or ``"auto"``."""
        if str(text).strip() == "auto":
            return cls(auto=True)
        match = re.fullmatch(r"\s*(\d)\s*x\s*(\d)\s*", str(text))
        if not match or not all(1 <= int(n) <= MAX_TILES_PER_SIDE for n in match.groups()):
            raise ConfigError(
                f"detector tiles {text!r} is not COLSxROWS with 1 to {MAX_TILES_PER_SIDE} each, or auto",
                "use 1x1 (no tiling) for 640x480, 2x2 for 720p, 3x2 for 1080p, or auto to choose by frame size",
            )
        return cls(int(match.group(1)), int(match.group(2)))

    @property
    def enabled(self) -> bool:
        return self.auto or self.cols * self.rows > 1

    def __str__(self) -> str:
        return "auto" if self.auto else f"{self.cols}x{self.rows}"

    def grid_for(self, width: int, height: int) -> tuple[int, int]:
        if not self.auto:
            return self.cols, self.rows
        def fit(length: int, base: int) -> int:
            return max(1, min(MAX_TILES_PER_SIDE, round(length / base)))
        return fit(width, BASE_FRAME[0]), fit(height, BASE_FRAME[1])

    def regions(self, width: int, height: int) -> list[Region]:
        """Overlapping tiles covering the frame; empty when tiling is off (or auto on a small frame)."""
        cols, rows = self.grid_for(width, height)
        if cols * rows == 1:
            return []
        xs, tile_w = _spans(width, cols, self.overlap)
        ys, tile_h = _spans(height, rows, self.overlap)
        return [Region(x, y, tile_w, tile_h) for y in ys for x in xs]


def _spans(length: int, count: int, overlap: float) -> tuple[list[int], int]:
    if count == 1:
        return [0], length
    size = min(length, math.ceil(length / (count - (count - 1) * overlap)))
    starts = [round(i * (length - size) / (count - 1)) for i in range(count)]
    return starts, size


def cut_by_inner_edge(box: tuple[float, float, float, float], region: Region, frame_w: int, frame_h: int) -> bool:
    """True when a box found in ``region`` (region coordinates) touches an edge that is inside the
    frame, i.e. the face probably continues in the neighbouring tile."""
    margin_x, margin_y = EDGE_MARGIN * region.width, EDGE_MARGIN * region.height
    x1, y1, x2, y2 = box
    return (
        (region.x > 0 and x1 <= margin_x)
        or (region.y > 0 and y1 <= margin_y)
        or (region.x + region.width < frame_w and x2 >= region.width - margin_x)
        or (region.y + region.height < frame_h and y2 >= region.height - margin_y)
    )


def to_frame(detection: Detection, region: Region) -> Detection:
    """A detection made in a tile, moved to frame coordinates."""
    from edge_agent.vision.detector import Detection  # loaded by then: detections come from it

    x1, y1, x2, y2 = detection.box
    shift = np.array([region.x, region.y], dtype=detection.keypoints.dtype)
    box = (x1 + region.x, y1 + region.y, x2 + region.x, y2 + region.y)
    return Detection(box, detection.score, detection.keypoints + shift)
