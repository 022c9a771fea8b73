"""Images whose colour order is part of their type.

Why: OpenCV decodes to BGR, the embedder and the detectors want RGB, and a BGR face given to SFace
embeds silently wrong (cosine 0.79 to the right template at worst, issue 13). The embedder accepts
only an ``RgbImage``, which can be made only by saying which order the array is in.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.errors import ModelError


@dataclass(frozen=True)
class RgbImage:
    """An HxWx3 uint8 image in RGB order. Make one with ``from_bgr`` or ``from_rgb``."""

    pixels: np.ndarray

    def __post_init__(self) -> None:
        p = self.pixels
        if not isinstance(p, np.ndarray) or p.dtype != np.uint8 or p.ndim != 3 or p.shape[2] != 3:
            raise ModelError(
                f"an RgbImage needs a uint8 HxWx3 array, got {getattr(p, 'dtype', type(p).__name__)} {getattr(p, 'shape', '')}",
                "pass the aligned face crop (RecognitionCore.faces(..., keep_aligned=True))",
            )

    @classmethod
    def from_bgr(cls, bgr: np.ndarray) -> "RgbImage":
        """OpenCV's order (cv2.imread, VideoCapture, warpAffine of a frame): converted."""
        return cls(cv2.cvtColor(np.ascontiguousarray(bgr), cv2.COLOR_BGR2RGB))

    @classmethod
    def from_rgb(cls, rgb: np.ndarray) -> "RgbImage":
        """Already RGB (PIL, matplotlib, a model's own RGB crop): taken as is."""
        return cls(np.ascontiguousarray(rgb))

    @property
    def shape(self) -> tuple[int, ...]:
        return self.pixels.shape

    def mirrored(self) -> "RgbImage":
        return RgbImage(np.ascontiguousarray(self.pixels[:, ::-1]))

    def wipe(self) -> None:
        """Zero the pixels in place (a non-match's face is not left for the allocator to hand out)."""
        self.pixels.fill(0)


def require_rgb(image: object, who: str) -> RgbImage:
    """The embedder boundary: a bare array (whose order nobody stated) is refused."""
    if not isinstance(image, RgbImage):
        raise ModelError(
            f"{who} needs an RgbImage, not {type(image).__name__}: its colour order must be stated",
            "wrap the crop with RgbImage.from_bgr(...) (OpenCV arrays) or RgbImage.from_rgb(...)",
        )
    return image
