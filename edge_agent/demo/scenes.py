"""Synthetic scenes made from the committed public-domain fixture photos: benchmark frames with N
faces, and the demo's "people walking past a camera" video. Nothing here is a real capture."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import EdgeAgentError
from edge_agent.vision.image_io import read_image
from edge_agent.vision.resize import resize_exact

FIXTURE_FACES = Path(__file__).resolve().parents[2] / "tests" / "fixtures" / "faces"
PHOTOS = ["astronaut_collins.jpg", "obama_1.jpg", "biden_1.jpg", "obama_2.jpg", "biden_2.jpg", "obama_3.jpg"]


def fixture_photo(name: str) -> np.ndarray:
    path = FIXTURE_FACES / name
    if not path.is_file():
        raise EdgeAgentError(f"fixture photo {path} not found", "run from a checkout of the repository (tests/fixtures/faces)")
    return read_image(path)


def portrait_tile(name: str, size: int) -> np.ndarray:
    """A square tile from the upper part of a portrait, where the face is."""
    image = fixture_photo(name)
    h, w = image.shape[:2]
    side = min(h, w)
    y0 = max(0, min(h - side, int(h * 0.05)))
    x0 = (w - side) // 2
    # Bit-exact on every CPU: the demo and the tests see the same scenes on x86 and on arm64.
    return resize_exact(image[y0 : y0 + side, x0 : x0 + side], size, size)


def background(width: int, height: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    frame = np.full((height, width, 3), 90, np.uint8)
    return cv2.add(frame, rng.integers(0, 40, frame.shape, dtype=np.uint8))


def frame_with_faces(count: int, width: int = 640, height: int = 480) -> np.ndarray:
    """``count`` portraits on a noisy background: one large, or several in a grid (200 px tiles)."""
    frame = background(width, height, count)
    if count == 1:
        frame[110:370, 190:450] = portrait_tile(PHOTOS[0], 260)
        return frame
    size, cols = 200, 3
    for i in range(count):
        r, c = divmod(i, cols)
        y, x = 20 + r * (size + 30), 10 + c * (size + 10)
        frame[y : y + size, x : x + size] = portrait_tile(PHOTOS[i % len(PHOTOS)], size)
    return frame


def walk_past_frames(people: list[str], fps: float = 15.0, seconds_each: float = 2.0, width: int = 640, height: int = 480, tile: int = 240):
    """Each person's portrait slides across the frame, one after another, with empty frames between."""
    per_person = int(fps * seconds_each)
    for n, name in enumerate(people):
        face = portrait_tile(name, tile)
        for i in range(per_person):
            frame = background(width, height, 1000 + n * per_person + i)
            x = int((width - tile) * i / max(1, per_person - 1))
            y = (height - tile) // 2
            frame[y : y + tile, x : x + tile] = face
            yield frame
        for i in range(int(fps // 2)):
            yield background(width, height, 5000 + n * 100 + i)


def write_walk_past_video(path: Path, people: list[str], fps: float = 15.0, seconds_each: float = 2.0) -> Path:
    """MJPG AVI, which every OpenCV build can write and read back."""
    writer = cv2.VideoWriter(str(path), cv2.VideoWriter.fourcc(*"MJPG"), fps, (640, 480))
    if not writer.isOpened():
        raise EdgeAgentError(f"cannot write video {path}", "check the folder is writable")
    try:
        for frame in walk_past_frames(people, fps, seconds_each):
            writer.write(frame)
    finally:
        writer.release()
    return path
