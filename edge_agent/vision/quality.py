"""Quality gates: a face must be big enough, confidently detected, sharp and roughly frontal
before it may be matched, because poor probes are where false alerts come from."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the policy is read by the config parser, which must not load OpenCV or LiteRT
    from edge_agent.vision.detector import Detection

TOO_SMALL = "too_small"
LOW_SCORE = "low_score"
BLURRY = "blurry"
OFF_FRONTAL = "off_frontal"


@dataclass(frozen=True)
class QualityPolicy:
    min_face_px: float = 40.0  # box width in frame pixels
    min_score: float = 0.6  # detector confidence
    min_blur: float = 30.0  # Laplacian variance of the aligned 112x112 grey crop
    max_yaw: float = 0.5  # |nose offset from eye midline| / inter-eye distance
    max_pitch: float = 0.45  # |nose height between eyes and mouth - 0.5|, a loose nod gate


@dataclass(frozen=True)
class QualityVerdict:
    ok: bool
    reasons: tuple[str, ...]
    face_px: float
    score: float
    blur: float
    yaw: float
    pitch: float


def blur_measure(aligned_rgb: np.ndarray) -> float:
    """Variance of the Laplacian: low on defocused or motion-blurred faces."""
    import cv2  # here, not at module level: see the TYPE_CHECKING note above

    grey = cv2.cvtColor(aligned_rgb, cv2.COLOR_RGB2GRAY)
    return float(cv2.Laplacian(grey, cv2.CV_64F).var())


def pose_ratios(keypoints: np.ndarray) -> tuple[float, float]:
    """Rough yaw and pitch from the keypoints, in the eye-line's frame so head roll does not count."""
    right_eye, left_eye, nose, mouth = (np.asarray(p, np.float64) for p in keypoints[:4])
    eye_mid = (right_eye + left_eye) / 2
    axis = left_eye - right_eye
    eye_dist = float(np.linalg.norm(axis))
    if eye_dist < 1e-6:
        return 1.0, 1.0
    x_axis = axis / eye_dist
    y_axis = np.array([-x_axis[1], x_axis[0]])
    yaw = float(np.dot(nose - eye_mid, x_axis) / eye_dist)
    mouth_depth = float(np.dot(mouth - eye_mid, y_axis))
    pitch = float(np.dot(nose - eye_mid, y_axis) / mouth_depth - 0.5) if mouth_depth > 1e-6 else 1.0
    return yaw, pitch


def assess(detection: Detection, aligned_rgb: np.ndarray, policy: QualityPolicy) -> QualityVerdict:
    reasons = []
    blur = blur_measure(aligned_rgb)
    yaw, pitch = pose_ratios(detection.keypoints)
    if detection.width < policy.min_face_px:
        reasons.append(TOO_SMALL)
    if detection.score < policy.min_score:
        reasons.append(LOW_SCORE)
    if blur < policy.min_blur:
        reasons.append(BLURRY)
    if abs(yaw) > policy.max_yaw or abs(pitch) > policy.max_pitch:
        reasons.append(OFF_FRONTAL)
    return QualityVerdict(not reasons, tuple(reasons), detection.width, detection.score, blur, yaw, pitch)
