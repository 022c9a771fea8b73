"""Which face in a photo is its subject: one rule for enrolment, search and evaluation.

The subject is the largest *usable* face (one the quality gate does not refuse as useless) when
it clearly dominates: its box area at least ``DOMINANT_AREA_RATIO`` times the next usable face's.
Two comparable usable faces are real ambiguity (whose photo is this?) and are refused, naming
both boxes, rather than guessed. Unusable detections (a backdrop pattern, a tiny face far behind)
never make a photo ambiguous. The ratio is measured in models/README.md ("Which face is the subject").
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from edge_agent.vision.core import Face

NO_FACE = "no_face"
MULTIPLE_FACES = "multiple_faces"
LOW_QUALITY = "low_quality"

#: Largest usable face over the next one, by box area, for the larger to be the subject.
DOMINANT_AREA_RATIO = 1.5
#: Bump when the rule changes, so cached evaluation outcomes from the old rule are not reused.
SELECTION_POLICY = f"largest-usable-face-if-{DOMINANT_AREA_RATIO:g}x-dominant/v2"


def box_area(face: "Face") -> float:
    x1, y1, x2, y2 = face.detection.box
    return max(0.0, x2 - x1) * max(0.0, y2 - y1)


def describe_box(face: "Face") -> str:
    x1, y1, x2, y2 = (round(v) for v in face.detection.box)
    return f"[{x1}, {y1}, {x2}, {y2}]"


@dataclass(frozen=True)
class SubjectChoice:
    face: "Face | None"  # the subject, or None with a reason
    reason: str | None  # NO_FACE, MULTIPLE_FACES or LOW_QUALITY
    detail: str = ""

    @property
    def ok(self) -> bool:
        return self.face is not None


def choose_subject(faces: Sequence["Face"], ratio: float = DOMINANT_AREA_RATIO) -> SubjectChoice:
    if not faces:
        return SubjectChoice(None, NO_FACE, "no face detected")
    usable = sorted((f for f in faces if f.quality.ok), key=box_area, reverse=True)
    if not usable:
        largest = max(faces, key=box_area)
        return SubjectChoice(None, LOW_QUALITY, ", ".join(largest.quality.reasons))
    if len(usable) > 1 and box_area(usable[0]) < ratio * box_area(usable[1]):
        first, second = usable[0], usable[1]
        return SubjectChoice(
            None,
            MULTIPLE_FACES,
            f"two faces of comparable size at {describe_box(first)} and {describe_box(second)}"
            f" (areas within {ratio:g}x of each other): which one is the subject cannot be told",
        )
    return SubjectChoice(usable[0], None)
