"""Which face-mesh points estimate the eye centres the ArcFace template means (the pupils).

Why: the five-point aligner (edge_agent/vision/landmarks.py) needs eye *centres*; the face mesh
gives eye contours. MediaPipe's iris model, run on each eye, finds the pupil centre precisely but
costs two more invokes per face, so it serves here only as the reference: for every dev-set
subject face, the distance from the pupil centre to (a) the midpoint of the two eye corners and
(b) the centroid of the 16-point eye contour, as a fraction of the inter-ocular distance.
Result (2026-12-02, 203 faces, 406 eyes): corners median 5.5 %, mean 6.0 %, 3.6 % too low on
average; contour median 4.8 %, mean 5.4 %, 2.6 % too low. The aligner uses the contour.
Run: python models/build/eval_eye_points.py   (project venv; run fetch.py first)
"""

from __future__ import annotations

import csv
import math

import cv2
import numpy as np

from common import DEV_FACES_DIR, IRIS_LANDMARK_SOURCE, source_path
from edge_agent.vision import landmarks
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.image_io import read_image
from edge_agent.vision.runtime import LiteRTModel
from edge_agent.vision.subject import choose_subject

CORNERS = ((33, 133), (362, 263))  # image-left eye, image-right eye
IRIS_INPUT = 64
IRIS_ROI_SCALE = 2.3  # MediaPipe's iris ROI: 2.3x the corner distance, square


def mesh_points(mesh: landmarks.FaceMesh, image: np.ndarray, detection) -> np.ndarray:
    """All 468 mesh points in frame pixels (the aligner keeps only five)."""
    matrix = landmarks.crop_transform(detection)
    crop = cv2.warpAffine(image, matrix, (landmarks.MESH_INPUT, landmarks.MESH_INPUT))
    out = mesh.model.run(cv2.cvtColor(crop, cv2.COLOR_BGR2RGB).astype(np.float32)[None] / 255.0)
    points = out[mesh._mesh_idx].reshape(-1, 3)[:, :2].astype(np.float64)
    inverse = cv2.invertAffineTransform(matrix)
    return points @ inverse[:, :2].T + inverse[:, 2]


def pupil_centre(iris: LiteRTModel, image: np.ndarray, a: np.ndarray, b: np.ndarray, flip: bool) -> np.ndarray:
    """The iris model's pupil centre for the eye with outer corner a and inner corner b (frame pixels)."""
    centre = (a + b) / 2
    side = IRIS_ROI_SCALE * float(np.linalg.norm(b - a))
    angle = math.degrees(math.atan2(b[1] - a[1], b[0] - a[0]))
    matrix = cv2.getRotationMatrix2D((float(centre[0]), float(centre[1])), angle, IRIS_INPUT / side)
    matrix[:, 2] += np.array([IRIS_INPUT / 2, IRIS_INPUT / 2]) - centre
    crop = cv2.cvtColor(cv2.warpAffine(image, matrix, (IRIS_INPUT, IRIS_INPUT)), cv2.COLOR_BGR2RGB)
    if flip:  # the model is trained on one eye; the other is mirrored, as MediaPipe does
        crop = crop[:, ::-1]
    outputs = iris.run(np.ascontiguousarray(crop).astype(np.float32)[None] / 255.0)
    pupil = next(o for o in outputs if o.size == 15).reshape(5, 3)[0, :2].astype(np.float64)
    if flip:
        pupil[0] = IRIS_INPUT - pupil[0]
    inverse = cv2.invertAffineTransform(matrix)
    return pupil @ inverse[:, :2].T + inverse[:, 2]


def main() -> int:
    core = RecognitionCore.load()
    iris = LiteRTModel(source_path(IRIS_LANDMARK_SOURCE), 2)
    errors: dict[str, list[float]] = {"corners": [], "contour": [], "corners_low": [], "contour_low": []}
    rows = list(csv.DictReader(open(DEV_FACES_DIR / "manifest.csv")))
    for row in rows:
        image = read_image(DEV_FACES_DIR / row["path"])
        subject = choose_subject(core.faces(image)).face
        if subject is None:
            continue
        points = mesh_points(core.aligner.mesh, image, subject.detection)
        centres = [points[list(c)].mean(0) for c in CORNERS]
        iod = float(np.linalg.norm(centres[1] - centres[0]))
        x_axis = (centres[1] - centres[0]) / iod
        down = np.array([-x_axis[1], x_axis[0]])
        for (outer, inner), contour, flip in ((CORNERS[0], landmarks.LEFT_EYE, False), (CORNERS[1][::-1], landmarks.RIGHT_EYE, True)):
            a, b = points[outer], points[inner]
            pupil = pupil_centre(iris, image, a, b, flip)
            for name, estimate in (("corners", (a + b) / 2), ("contour", points[list(contour)].mean(0))):
                errors[name].append(float(np.linalg.norm(estimate - pupil)) / iod)
                errors[f"{name}_low"].append(float((estimate - pupil) @ down) / iod)
    print(f"{len(errors['corners'])} eyes; fractions of the inter-ocular distance")
    print("| eye centre from | median error | mean error | 90th percentile | mean offset below the pupil |")
    print("|---|---:|---:|---:|---:|")
    for name in ("corners", "contour"):
        e, low = np.array(errors[name]), np.array(errors[f"{name}_low"])
        print(f"| {name} | {np.median(e):.4f} | {e.mean():.4f} | {np.quantile(e, 0.9):.4f} | {low.mean():.4f} |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
