"""Reads still images safely: size and pixel limits are checked before decoding, and every failure
is an ImageError that says what is wrong with which file."""

from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from edge_agent.errors import ImageError
from edge_agent.vision.image_header import header_dimensions

MAX_FILE_BYTES = 64 * 1024 * 1024
MAX_PIXELS = 50_000_000  # ~8K x 6K: larger inputs are refused rather than exhausting a Pi's memory
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp", ".tif", ".tiff")


def read_image(path: str | Path) -> np.ndarray:
    """Decode to BGR uint8 HxWx3 (grey and alpha images are converted)."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except FileNotFoundError:
        raise ImageError(f"image {path} does not exist", "check the path") from None
    if not path.is_file():
        raise ImageError(f"{path} is not a file", "pass an image file")
    if size == 0:
        raise ImageError(f"image {path} is empty (0 bytes)", "the copy may have failed; copy it again")
    if size > MAX_FILE_BYTES:
        raise ImageError(f"image {path} is {size} bytes, over the {MAX_FILE_BYTES} byte limit", "resize or recompress it")
    return decode_image(path.read_bytes(), str(path))


def decode_image(data: bytes, name: str = "image") -> np.ndarray:
    """Decode bytes already in memory, after the header's dimensions pass the pixel limit."""
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)", "the copy may have failed; copy it again")
    _check_dimensions(data, name)
    try:
        image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    except cv2.error:  # OpenCV raises on some corrupt inputs (an empty buffer: an assertion) instead of returning None
        image = None
    if image is None or image.size == 0:
        raise _undecodable(name)
    return image


def _undecodable(name: str) -> ImageError:
    return ImageError(
        f"{name} cannot be decoded: not an image, or corrupt or truncated",
        "check the file opens in an image viewer; re-export it as JPEG or PNG",
    )


def _check_dimensions(data: bytes, name: str) -> None:
    """Refuse decompression bombs from the header alone (OpenCV would allocate them first); a file
    whose header cannot be measured is refused too, so no format escapes the check."""
    dims = header_dimensions(data)
    if dims is None:
        raise _undecodable(name)
    if dims[0] * dims[1] > MAX_PIXELS:
        raise ImageError(
            f"{name} is {dims[0]}x{dims[1]} pixels, over the {MAX_PIXELS} pixel limit",
            "downscale it before searching",
        )


def is_image_file(path: Path) -> bool:
    return path.suffix.lower() in IMAGE_SUFFIXES
