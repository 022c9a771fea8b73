"""Similarity alignment of a face to the standard 112x112 ArcFace five-point template.

Two aligners; the core runs one, and its identifier is bound into every watchlist:

* ``MeshAligner`` (the default): eye centres, nose tip and both mouth corners from the face mesh
  (vision/landmarks.py), fitted with ``cv2.estimateAffinePartial2D`` (LMEDS, which OpenCV seeds
  the same way on every call, so it is deterministic). This is what SFace was trained on.
* ``FourPointAligner`` (retired, kept to measure against): BlazeFace's eyes, nose tip and mouth
  centre, the centre matched to the midpoint of the template's mouth corners (Umeyama least squares).

Figures (accuracy and cost per face of each) are in models/README.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import cv2
import numpy as np

from edge_agent.vision.detector import Detection
from edge_agent.vision.identity import FOUR_POINT_ALIGNER, mesh_aligner_id
from edge_agent.vision.landmarks import FaceMesh
from edge_agent.vision.pixels import RgbImage

CROP_SIZE = 112

# ArcFace 112x112 template: image-left eye, image-right eye, nose tip, mouth corners (image left, right).
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
_FOUR_POINT_TARGET = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(axis=0)])


@dataclass(frozen=True)
class Alignment:
    """An aligned face and what the aligner learnt about it."""

    crop: RgbImage  # 112x112, the embedder's input
    points: np.ndarray  # the frame points the crop was fitted to
    presence: float | None  # the face mesh's face score (None: the aligner has no such signal)


class Aligner(Protocol):
    id: str

    def align(self, image_bgr: np.ndarray, detection: Detection) -> Alignment: ...


def similarity_transform(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """2x3 least-squares similarity (rotation, uniform scale, translation) mapping src onto dst."""
    src = np.asarray(src, np.float64)
    dst = np.asarray(dst, np.float64)
    src_mean, dst_mean = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_mean, dst - dst_mean
    cov = dst_c.T @ src_c / len(src)
    u, s, vt = np.linalg.svd(cov)
    d = np.ones(2)
    if np.linalg.det(u) * np.linalg.det(vt) < 0:
        d[-1] = -1
    rotation = u @ np.diag(d) @ vt
    var_src = (src_c**2).sum() / len(src)
    scale = (s * d).sum() / var_src if var_src > 0 else 1.0
    translation = dst_mean - scale * rotation @ src_mean
    return np.hstack([scale * rotation, translation[:, None]])


def warp_to_template(image_bgr: np.ndarray, matrix: np.ndarray) -> RgbImage:
    crop = cv2.warpAffine(image_bgr, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    try:
        return RgbImage.from_bgr(crop)
    finally:
        crop.fill(0)


def five_point_transform(points: np.ndarray) -> np.ndarray:
    """Similarity from five frame points to the template; least squares if LMEDS finds no model."""
    matrix, _ = cv2.estimateAffinePartial2D(
        np.asarray(points, np.float32), ARCFACE_TEMPLATE.astype(np.float32), method=cv2.LMEDS
    )
    return matrix if matrix is not None else similarity_transform(points, ARCFACE_TEMPLATE)


class MeshAligner:
    def __init__(self, mesh: FaceMesh, mesh_sha256: str) -> None:
        self.mesh = mesh
        self.id = mesh_aligner_id(mesh_sha256)

    def align(self, image_bgr: np.ndarray, detection: Detection) -> Alignment:
        found = self.mesh.points(image_bgr, detection)
        return Alignment(warp_to_template(image_bgr, five_point_transform(found.points)), found.points, found.presence)


class FourPointAligner:
    id = FOUR_POINT_ALIGNER

    def align(self, image_bgr: np.ndarray, detection: Detection) -> Alignment:
        points = np.asarray(detection.keypoints, np.float64)[:4]
        return Alignment(warp_to_template(image_bgr, similarity_transform(points, _FOUR_POINT_TARGET)), points, None)


def align_face(image_bgr: np.ndarray, keypoints: np.ndarray) -> RgbImage:
    """The four-point alignment of one set of BlazeFace keypoints (model tests and benchmarks)."""
    return warp_to_template(image_bgr, similarity_transform(np.asarray(keypoints, np.float64)[:4], _FOUR_POINT_TARGET))
