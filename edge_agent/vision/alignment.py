"""Similarity alignment of a face to the standard 112x112 ArcFace template.

BlazeFace gives eyes, nose tip and mouth centre (no mouth corners), so the mouth centre is matched
to the midpoint of the template's two mouth corners: four correspondences, least-squares similarity
(Umeyama), which is deterministic where RANSAC is not. Enrolment and matching must use the same
aligner: its identifier below is bound into every watchlist.
"""

from __future__ import annotations

import cv2
import numpy as np

ALIGNER_ID = "arcface112-umeyama-eyes-nose-mouthcentre-v1"
CROP_SIZE = 112

# ArcFace 112x112 template: right eye, left eye (image left to right), nose tip, mouth corners.
ARCFACE_TEMPLATE = np.array(
    [[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366], [41.5493, 92.3655], [70.7299, 92.2041]],
    dtype=np.float64,
)
_TARGET = np.vstack([ARCFACE_TEMPLATE[:3], ARCFACE_TEMPLATE[3:].mean(axis=0)])


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


def alignment_points(keypoints: np.ndarray) -> np.ndarray:
    """The four BlazeFace keypoints used for alignment: both eyes, nose tip, mouth centre."""
    return np.asarray(keypoints, np.float64)[:4]


def align_face(image_bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
    """Warp the face to a 112x112 RGB uint8 crop, the embedder's input."""
    matrix = similarity_transform(alignment_points(keypoints), _TARGET)
    crop = cv2.warpAffine(image_bgr, matrix, (CROP_SIZE, CROP_SIZE), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_REPLICATE)
    return cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
