"""Five alignment points (eye centres, nose tip, mouth corners) from MediaPipe's face mesh.

Why: SFace was trained on five-point alignment; BlazeFace gives a mouth *centre*, so without the
mesh the mouth corners are guessed. The mesh runs only on faces the detector found, on a square
crop 1.5x the box's longer side, centred on the box and rotated level by the detector's eye
keypoints; its 468 points are mapped back to the frame. The recipe is the one measured best on
held-out photos (../shared/requirements/models.md), with the eye centres taken from the whole eye
contour (below); figures in models/README.md. The mesh also says how face-like the crop is (``presence``), which the quality
gate uses to drop backdrop detections.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np

from edge_agent.vision.detector import Detection
from edge_agent.vision.runtime import LiteRTModel

MESH_INPUT = 192
CROP_SCALE = 1.5
# Mesh indices. Eye centres: the centroid of each eye's 16-point contour, which lies closer to the
# pupil centre (the template's eye point) than the midpoint of the two corners does (measured
# against MediaPipe's iris model on the dev set: median error 4.8 % vs 5.5 % of the inter-ocular
# distance; models/build/eval_eye_points.py). Nose tip; mouth corners (image left, right).
LEFT_EYE = (33, 7, 163, 144, 145, 153, 154, 155, 133, 173, 157, 158, 159, 160, 161, 246)  # image-left eye
RIGHT_EYE = (263, 249, 390, 373, 374, 380, 381, 382, 362, 398, 384, 385, 386, 387, 388, 466)
NOSE_TIP = 1
MOUTH_LEFT = 61
MOUTH_RIGHT = 291


@dataclass(frozen=True)
class MeshPoints:
    """Five points in frame pixels, in the ArcFace template's order, and the mesh's face score."""

    points: np.ndarray  # (5, 2) float64: image-left eye centre, image-right eye centre, nose tip, mouth left, mouth right
    presence: float  # sigmoid of the mesh's face flag: near 0 on a crop that holds no face


def crop_transform(detection: Detection) -> np.ndarray:
    """2x3 affine from frame pixels to the mesh's 192x192 input: box centre to the crop centre,
    1.5x the box's longer side across, eye line level."""
    x1, y1, x2, y2 = detection.box
    centre = ((x1 + x2) / 2, (y1 + y2) / 2)
    side = CROP_SCALE * max(x2 - x1, y2 - y1)
    left_eye, right_eye = np.asarray(detection.keypoints[0], float), np.asarray(detection.keypoints[1], float)
    angle = math.degrees(math.atan2(right_eye[1] - left_eye[1], right_eye[0] - left_eye[0]))
    matrix = cv2.getRotationMatrix2D(centre, angle, MESH_INPUT / max(side, 1.0))
    matrix[:, 2] += np.array([MESH_INPUT / 2, MESH_INPUT / 2]) - np.array(centre)
    return matrix


class FaceMesh:
    """The face-landmark model, run once per detected face."""

    def __init__(self, model: LiteRTModel) -> None:
        if model.inputs[0].shape[1:3] != (MESH_INPUT, MESH_INPUT):
            raise ValueError(f"{model.path.name} has input {model.inputs[0].shape}, not the {MESH_INPUT}x{MESH_INPUT} face mesh")
        self.model = model
        self._mesh_idx = next(i for i, s in enumerate(model.outputs) if s.shape[-1] == 1404)
        self._flag_idx = 1 - self._mesh_idx

    def points(self, image_bgr: np.ndarray, detection: Detection) -> MeshPoints:
        matrix = crop_transform(detection)
        crop = cv2.warpAffine(image_bgr, matrix, (MESH_INPUT, MESH_INPUT), flags=cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
        rgb = cv2.cvtColor(crop, cv2.COLOR_BGR2RGB)
        try:
            outputs = self.model.run(rgb.astype(np.float32)[None] / 255.0)
        finally:
            crop.fill(0)
            rgb.fill(0)
        mesh = outputs[self._mesh_idx].reshape(-1, 3)[:, :2].astype(np.float64)
        flag = float(outputs[self._flag_idx].reshape(-1)[0])
        inverse = cv2.invertAffineTransform(matrix)
        picked = np.stack([
            mesh[list(LEFT_EYE)].mean(0), mesh[list(RIGHT_EYE)].mean(0), mesh[NOSE_TIP], mesh[MOUTH_LEFT], mesh[MOUTH_RIGHT],
        ])
        frame_points = picked @ inverse[:, :2].T + inverse[:, 2]
        return MeshPoints(frame_points, 1.0 / (1.0 + math.exp(-max(-80.0, min(80.0, flag)))))
