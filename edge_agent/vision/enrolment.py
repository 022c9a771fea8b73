"""Turning a reference photo into a template: exactly one usable face, embedded with its mirror image.

Shared by the central watchlist build, the retrospective-search gallery and evaluation, so every
enrolment path refuses the same things for the same reasons.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.vision.core import Face, RecognitionCore

NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
LOW_QUALITY = "low_quality"


@dataclass(frozen=True)
class Enrolment:
    template: np.ndarray | None  # (128,) unit vector, or None when the image was refused
    reason: str | None  # why it was refused (NO_FACE, MULTIPLE_FACES, LOW_QUALITY)
    face: Face | None
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.template is not None


def enrol_image(core: RecognitionCore, image_bgr: np.ndarray) -> Enrolment:
    """A reference image must show one face that passes the quality gates; a second face makes the
    image ambiguous (whose face is the subject?) and it is refused rather than guessed."""
    faces = core.faces(image_bgr, with_mirror=True)
    if not faces:
        return Enrolment(None, NO_FACE, None, "no face detected")
    if len(faces) > 1:
        return Enrolment(None, MULTIPLE_FACES, None, f"{len(faces)} faces detected")
    face = faces[0]
    if face.embedding is None:
        return Enrolment(None, LOW_QUALITY, face, ", ".join(face.quality.reasons))
    return Enrolment(face.embedding, None, face)
