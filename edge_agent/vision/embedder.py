"""Face embedder: aligned 112x112 RGB crop -> L2-normalised float32 template (SFace, 128-D)."""

from __future__ import annotations

import cv2
import numpy as np

from edge_agent.vision.alignment import CROP_SIZE
from edge_agent.vision.pixels import RgbImage, require_rgb
from edge_agent.vision.runtime import LiteRTModel, quantize


def l2_normalise(vectors: np.ndarray) -> np.ndarray:
    vectors = np.asarray(vectors, np.float32)
    norms = np.linalg.norm(vectors, axis=-1, keepdims=True)
    return vectors / np.maximum(norms, 1e-12)


class Embedder:
    """Feeds RGB pixel values 0..255 (the quantized model's input scale 1 / zero point -128 maps them
    exactly to int8; normalisation is inside the graph) and returns a unit vector."""

    def __init__(self, model: LiteRTModel) -> None:
        shape = model.inputs[0].shape
        if shape[1:3] != (CROP_SIZE, CROP_SIZE):
            raise ValueError(f"{model.path.name} expects {shape}, not a {CROP_SIZE}x{CROP_SIZE} face embedder")
        self.model = model
        # RGB 0..255 -> the input tensor's values, precomputed (int8: pixel - 128).
        self._lut = quantize(np.arange(256, dtype=np.float32), model.inputs[0])
        self.dimension = int(np.prod(model.outputs[0].shape[1:]))

    def embed(self, face: RgbImage, with_mirror: bool = False) -> np.ndarray:
        """One template from an aligned 112x112 face; ``with_mirror`` averages the face and its
        mirror image (used at enrolment, where the extra invoke is cheap and makes reference
        templates steadier). A bare array is refused: its colour order is not known."""
        face = require_rgb(face, "the embedder")
        if face.shape[:2] != (CROP_SIZE, CROP_SIZE):
            raise ValueError(f"the embedder needs a {CROP_SIZE}x{CROP_SIZE} aligned face, got {face.shape}")
        vector = self._raw(face.pixels)
        if with_mirror:
            vector = l2_normalise(vector) + l2_normalise(self._raw(face.pixels[:, ::-1]))
        return l2_normalise(vector)

    def _raw(self, aligned_rgb: np.ndarray) -> np.ndarray:
        pixels = cv2.LUT(np.ascontiguousarray(aligned_rgb), self._lut)
        try:
            return self.model.run(pixels[None])[0].reshape(-1)
        finally:
            pixels.fill(0)  # the face in the model's input encoding: not left for the allocator to hand out
