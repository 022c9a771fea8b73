"""Turning a reference photo into a template: the photo's subject (vision/subject.py), embedded with
its mirror image.

Shared by the central watchlist build, the retrospective-search gallery and evaluation, so every
enrolment path takes and refuses the same photos for the same reasons. A photo is refused only
when matching could not use it (no usable face, or two comparable faces); milder findings (a soft,
small or turned face) are warnings the builder reports (policing.md 6: low-quality reference
images raise a warning at build time).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from edge_agent.vision.core import Face, RecognitionCore
from edge_agent.vision.subject import LOW_QUALITY, MULTIPLE_FACES, NO_FACE, choose_subject

__all__ = ["Enrolment", "enrol_image", "NO_FACE", "MULTIPLE_FACES", "LOW_QUALITY"]

WARNING_TEXT = {
    "soft": "the face is soft (out of focus or motion-blurred)",
    "small": "the face is small",
    "turned": "the face is turned away from the camera",
}


@dataclass(frozen=True)
class Enrolment:
    template: np.ndarray | None  # (128,) unit vector, or None when the image was refused
    reason: str | None  # why it was refused (NO_FACE, MULTIPLE_FACES, LOW_QUALITY)
    face: Face | None
    detail: str = ""
    warnings: tuple[str, ...] = ()  # mild quality findings: enrolled, but a better photo would match better

    @property
    def ok(self) -> bool:
        return self.template is not None

    def warning_text(self) -> str:
        return "; ".join(WARNING_TEXT.get(w, w) for w in self.warnings)


def enrol_image(core: RecognitionCore, image_bgr: np.ndarray) -> Enrolment:
    choice = choose_subject(core.faces(image_bgr, with_mirror=True))
    if choice.face is None:
        return Enrolment(None, choice.reason, None, choice.detail)
    face = choice.face
    return Enrolment(face.embedding, None, face, warnings=face.quality.warnings)
