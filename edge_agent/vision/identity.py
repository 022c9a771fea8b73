"""Which models and aligner made a template: the identity a watchlist, an alert and a calibration
are bound to. No heavy imports: the watchlist loader and the formats read this.

Templates from different aligners do not compare (the same face aligned from different points
embeds differently), so the aligner is part of the identity; the face-mesh aligner's identity
carries the mesh model's sha256 too.
"""

from __future__ import annotations

from dataclasses import dataclass

DETECTOR_CHOICES = ("full", "short", "both")
#: The one default for the core, every CLI command and the demo: both BlazeFace ranges, so faces
#: that fill the frame (which the full-range model misses) and faces up to ~5 m are found. A
#: device's hardware profile may choose one range; its watchlist must then be built with the same.
DEFAULT_DETECTOR = "both"

#: BlazeFace eyes, nose tip and mouth centre (four points; the mouth corners guessed). Retired.
FOUR_POINT_ALIGNER = "arcface112-umeyama-eyes-nose-mouthcentre-v1"
#: Eye centres, nose tip and mouth corners from the MediaPipe face mesh (vision/landmarks.py).
MESH_ALIGNER = "arcface112-mesh5-lmeds-v1"
RETIRED_ALIGNERS = {FOUR_POINT_ALIGNER: "the retired four-point aligner (BlazeFace eyes, nose tip, mouth centre)"}


def mesh_aligner_id(mesh_sha256: str) -> str:
    return f"{MESH_ALIGNER}+{mesh_sha256}"


@dataclass(frozen=True)
class ModelIdentity:
    """The model families a template came from (each named by its reference member's sha256,
    edge_agent.vision.model_choice) and the aligner; a watchlist and a calibration are bound to
    exactly these. ``precision`` is the variant this device runs: reported, never part of the binding."""

    detector_sha256: str
    aligner: str
    embedder_sha256: str
    precision: str = ""

    def as_dict(self) -> dict[str, str]:
        """The binding (watchlist header ``model``, calibration, event v1 ``model``)."""
        return {"detector_sha256": self.detector_sha256, "aligner": self.aligner, "embedder_sha256": self.embedder_sha256}

    def as_event_dict(self) -> dict[str, str]:
        """Event v2 ``model``: the binding plus the precision that produced the alert."""
        return {**self.as_dict(), "precision": self.precision}

    @classmethod
    def from_dict(cls, data: dict[str, str]) -> "ModelIdentity":
        return cls(str(data["detector_sha256"]), str(data["aligner"]), str(data["embedder_sha256"]))


def explain_aligner_change(made_with: str, runs: str) -> str | None:
    """A sentence for the operator when templates come from a retired aligner (else None)."""
    retired = RETIRED_ALIGNERS.get(made_with.split("+", 1)[0])
    if retired is None or made_with == runs:
        return None
    return f"its templates were made with {retired}; this release aligns faces on five face-mesh points ({runs.split('+', 1)[0]})"
