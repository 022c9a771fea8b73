"""Face quality: a gate only where a face is useless, and a score everywhere else.

Why: refusing ordinary three-quarter or slightly soft faces cost more accuracy than quantisation
did (issue 13: 1.77 % of held-out portraits refused, TAR @ FAR 1e-3 0.959 against 0.987 with the
same faces embedded regardless). So the gate here refuses only what measurably cannot be matched
(``python -m edge_agent.evaluation.quality_loss``; figures in models/README.md), and every other
face carries a ``quality`` in [0, 1] that tracking, fusion and alert selection rank by (best
frames first). Enrolment turns the milder findings into warnings (``WARNINGS``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # the agent's config reads QualityPolicy: no OpenCV or LiteRT import for that
    from edge_agent.vision.detector import Detection
    from edge_agent.vision.pixels import RgbImage

# Reasons a face is not used at all (gates) ...
NOT_A_FACE = "not_a_face"  # the face mesh finds no face in the detector's box (backdrop, pattern)
TOO_SMALL = "too_small"
BLURRY = "blurry"
OFF_FRONTAL = "off_frontal"
LOW_SCORE = "low_score"
# ... and the milder findings enrolment warns about.
SOFT = "soft"
SMALL = "small"
TURNED = "turned"


@dataclass(frozen=True)
class QualityPolicy:
    """Gates (below them a face is useless: not embedded, never matched) and the levels at which
    each signal stops costing accuracy (quality 1 for that signal; enrolment warns below them).

    Measured on the dev set and degraded copies (models/README.md, "Quality that predicts loss"):
    genuine scores collapse below blur 4 (mean 0.14, 95 % of mated probes missed at the FAR 1e-3
    threshold) and below face-mesh presence 0.5 (mean 0.11, 99 % missed), and recover by blur 15
    and presence 0.99; faces of 24-28 px still match (mean 0.55 against 0.67 above 36 px);
    detector score tracks loss (0.27 below 0.6, 0.66 above 0.9). No degradation raised the top
    impostor score, so no gate is needed against false alerts from poor faces on this evidence."""

    min_face_px: float = 24.0  # box width in frame pixels (the detector finds few faces below it)
    min_blur: float = 4.0  # Laplacian variance of the aligned 112x112 grey crop
    max_yaw: float = 1.0  # |nose offset from the eye midline| / inter-eye distance: a profile
    min_presence: float = 0.5  # the face mesh's face score: below it, a backdrop or a pattern
    min_score: float = 0.0  # detector confidence (the detector's own threshold already applies)
    full_face_px: float = 48.0
    full_blur: float = 15.0
    full_yaw: float = 0.45
    full_presence: float = 0.99
    full_score: float = 0.9


@dataclass(frozen=True)
class QualityVerdict:
    ok: bool  # usable: embedded and matched
    reasons: tuple[str, ...]  # why not usable
    face_px: float
    score: float
    blur: float
    yaw: float
    pitch: float
    presence: float | None = None
    quality: float = 0.0  # 0..1, how much of a clean face's genuine score to expect
    warnings: tuple[str, ...] = ()


def blur_measure(aligned: "RgbImage") -> float:
    """Variance of the Laplacian: low on defocused or motion-blurred faces."""
    import cv2

    grey = cv2.cvtColor(aligned.pixels, cv2.COLOR_RGB2GRAY)
    try:
        return float(cv2.Laplacian(grey, cv2.CV_64F).var())
    finally:
        grey.fill(0)


def pose_ratios(points: np.ndarray) -> tuple[float, float]:
    """Rough yaw and pitch from alignment points (four: eyes, nose, mouth centre; or five: eyes,
    nose, mouth corners), in the eye line's frame so head roll does not count."""
    points = np.asarray(points, np.float64)
    if len(points) not in (4, 5):
        raise ValueError(f"pose needs the 4 or 5 alignment points, got {len(points)}")
    right_eye, left_eye, nose = points[0], points[1], points[2]
    mouth = points[3:].mean(axis=0)
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


def _ramp(value: float, zero: float, one: float, floor: float = 0.0) -> float:
    """``floor`` at ``zero``, 1 at ``one``, linear between (either direction)."""
    if one == zero:
        return 1.0
    return floor + (1.0 - floor) * float(np.clip((value - zero) / (one - zero), 0.0, 1.0))


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


def quality_score(face_px: float, blur: float, yaw: float, presence: float | None, det_score: float, policy: QualityPolicy) -> float:
    """How much of a clean face's genuine score to expect, 0..1: one factor per signal, shaped like
    its measured loss (each from its gate to its ``full_`` level). Small faces keep 0.8 at the gate
    (measured: they still match); presence is ramped on the log-odds scale (0.95 is only half way:
    faces the mesh is unsure of matched at mean 0.31)."""
    q = _ramp(face_px, policy.min_face_px, policy.full_face_px, floor=0.8)
    q *= _ramp(blur, policy.min_blur, policy.full_blur)
    q *= _ramp(-abs(yaw), -policy.max_yaw, -policy.full_yaw, floor=0.5)
    q *= _ramp(det_score, 0.5, policy.full_score, floor=0.3)
    if presence is not None:
        q *= _ramp(_logit(presence), _logit(policy.min_presence), _logit(policy.full_presence))
    return round(q, 4)


def assess(detection: "Detection", aligned: "RgbImage", points: np.ndarray, presence: float | None, policy: QualityPolicy) -> QualityVerdict:
    blur = blur_measure(aligned)
    yaw, pitch = pose_ratios(points)
    reasons, warnings = [], []
    if presence is not None and presence < policy.min_presence:
        reasons.append(NOT_A_FACE)
    if detection.width < policy.min_face_px:
        reasons.append(TOO_SMALL)
    elif detection.width < policy.full_face_px:
        warnings.append(SMALL)
    if blur < policy.min_blur:
        reasons.append(BLURRY)
    elif blur < policy.full_blur:
        warnings.append(SOFT)
    if abs(yaw) > policy.max_yaw:
        reasons.append(OFF_FRONTAL)
    elif abs(yaw) > policy.full_yaw:
        warnings.append(TURNED)
    if detection.score < policy.min_score:
        reasons.append(LOW_SCORE)
    q = 0.0 if reasons else quality_score(detection.width, blur, yaw, presence, detection.score, policy)
    return QualityVerdict(not reasons, tuple(reasons), detection.width, detection.score, blur, yaw, pitch, presence, q, tuple(warnings))
