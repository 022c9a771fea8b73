"""The recognition core: detect -> align -> quality -> embed, with the identity of the models used.

Everything that turns pixels into templates (the device, the central watchlist build, evaluation)
goes through this class, so enrolment and matching always use the same detector and aligner.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.errors import EdgeAgentError
from edge_agent.vision.alignment import Aligner, FourPointAligner, MeshAligner
from edge_agent.library_pins import scored_versions, warnings as library_warnings
from edge_agent.vision.cpu_profile import read_cpu_profile
from edge_agent.vision.detector import BlazeFaceDetector, Detection, drop_nested, merge_detections
from edge_agent.vision.embedder import Embedder
from edge_agent.vision.identity import DEFAULT_DETECTOR, DETECTOR_CHOICES, ModelIdentity, mesh_aligner_id
from edge_agent.vision.landmarks import FaceMesh
from edge_agent.vision.model_choice import DETECTOR_FAMILIES, FAMILIES, PRECISIONS, choose_variant, precision_label
from edge_agent.vision.model_files import ModelFile, ModelManifest, default_models_dir
from edge_agent.vision.model_timings import MEASURE_HINT, MeasuredOn, ModelTimings
from edge_agent.vision.pixels import RgbImage
from edge_agent.vision.quality import QualityPolicy, QualityVerdict, assess
from edge_agent.vision.runtime import LiteRTModel
from edge_agent.vision.tiling import TileGrid, cut_by_inner_edge, to_frame

__all__ = [
    "Detection", "Face", "ModelFiles", "ModelIdentity", "QualityVerdict", "RecognitionCore", "DETECTOR_CHOICES", "DEFAULT_DETECTOR", "PRECISIONS",
]

LANDMARK_MODEL = "face_landmark"  # the face mesh (float only; its sha256 is part of the aligner's identity)
ALIGNER_CHOICES = ("mesh", "four_point")
DEFAULT_ALIGNER = "mesh"

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ModelFiles:
    """The verified model files a core with this detector choice runs, and their identity.

    Resolving them needs no interpreter, so a deployment can be checked against the models a
    device will run without loading those models."""

    detectors: tuple[tuple[str, ModelFile], ...]  # (range: full|short, file)
    embedder: ModelFile
    family_sha256: tuple[tuple[str, ...], str]  # (detector families..., embedder family): reference members' hashes
    precisions: tuple[tuple[str, ...], str]  # (each detector's precision, the embedder's)
    landmarks: ModelFile | None = None  # the face mesh (None: the retired four-point aligner)
    choice: str = "config"  # what chose the variants: config (int8|float32 asked for), measured (this device's timings), profile
    choice_note: str = ""  # for the journal and `config check`: when they were measured, or why they were not used

    @property
    def aligner_id(self) -> str:
        return mesh_aligner_id(self.landmarks.sha256) if self.landmarks is not None else FourPointAligner.id

    @property
    def identity(self) -> ModelIdentity:
        detector_precision = "+".join(dict.fromkeys(self.precisions[0]))
        return ModelIdentity(
            "+".join(self.family_sha256[0]), self.aligner_id, self.family_sha256[1], precision_label(detector_precision, self.precisions[1])
        )

    @classmethod
    def resolve(
        cls,
        models_dir: Path | None = None,
        detector: str = DEFAULT_DETECTOR,
        precision: str = "auto",
        aligner: str = DEFAULT_ALIGNER,
        timings: ModelTimings | None = None,
        threads: int = 1,
    ) -> "ModelFiles":
        """``precision``: int8, float32, or auto: ``timings`` (this device's own, model_timings.py)
        decide per family while they still describe it at ``threads``, else the CPU profile."""
        if detector not in DETECTOR_CHOICES:
            raise EdgeAgentError(f"unknown detector {detector!r}", f"choose one of {', '.join(DETECTOR_CHOICES)}")
        if aligner not in ALIGNER_CHOICES:
            raise EdgeAgentError(f"unknown aligner {aligner!r}", f"choose one of {', '.join(ALIGNER_CHOICES)}")
        manifest = ModelManifest(models_dir or default_models_dir())
        profile = read_cpu_profile() if precision == "auto" else None
        ranges = ["full", "short"] if detector == "both" else [detector]
        families = [FAMILIES[DETECTOR_FAMILIES[r]] for r in ranges] + [FAMILIES["embedder"]]
        choice, note = ("config", f"precision {precision} asked for") if profile is None else ("profile", "CPU profile (no timings)")
        if profile is not None and timings is not None:
            stale = timings.stale_reason(MeasuredOn.here(profile, threads), manifest.recorded_sha256)
            if stale is None:
                choice, note = "measured", f"this device's timings of {timings.measured_at}"
            else:
                note = f"CPU profile: the model timings are stale ({stale}); {MEASURE_HINT}"
        measured = timings if choice == "measured" else None
        chosen = [choose_variant(family, precision, profile, measured.chosen(family.name) if measured else None) for family in families]
        files = [manifest.resolve(name) for _, name in chosen]
        refs = [manifest.recorded_sha256(family.reference) for family in families]
        landmarks = manifest.resolve(LANDMARK_MODEL) if aligner == "mesh" else None
        return cls(
            tuple(zip(ranges, files[:-1], strict=True)), files[-1], (tuple(refs[:-1]), refs[-1]), (tuple(p for p, _ in chosen[:-1]), chosen[-1][0]),
            landmarks, choice, note,
        )


@dataclass(frozen=True)
class Face:
    detection: Detection
    quality: QualityVerdict
    embedding: np.ndarray | None  # (128,) float32 unit vector; None when the quality gate refused the face
    aligned: RgbImage | None = None  # 112x112 crop, only when asked for (never kept by the agent)


class RecognitionCore:
    def __init__(
        self,
        detectors: list[BlazeFaceDetector],
        embedder: Embedder,
        identity: ModelIdentity,
        quality: QualityPolicy,
        tiles: TileGrid | None = None,
        aligner: Aligner | None = None,
        choice: str = "config",
    ) -> None:
        self.detectors = detectors
        self.choice = choice  # ModelFiles.choice: what chose the variants (telemetry reports it)
        self.embedder = embedder
        self.identity = identity
        self.quality = quality
        self.tiles = tiles or TileGrid()
        self.aligner: Aligner = aligner or FourPointAligner()
        if self.aligner.id != identity.aligner:
            raise ValueError(f"aligner {self.aligner.id} does not match the identity's {identity.aligner}")

    @classmethod
    def load(
        cls,
        models_dir: Path | None = None,
        detector: str = DEFAULT_DETECTOR,
        threads: int = 2,
        delegate: str = "none",
        quality: QualityPolicy | None = None,
        detection_threshold: float = 0.5,
        tiles: TileGrid | None = None,
        precision: str = "auto",
        aligner: str = DEFAULT_ALIGNER,
        timings: ModelTimings | None = None,
    ) -> "RecognitionCore":
        files = ModelFiles.resolve(models_dir, detector, precision, aligner, timings, threads)
        # The Edge TPU only runs the embedder's int8 graph; detectors with float heads stay on CPU.
        detectors = [BlazeFaceDetector(LiteRTModel(f.path, threads), variant, detection_threshold) for variant, f in files.detectors]
        embedder = Embedder(LiteRTModel(files.embedder.path, threads, delegate))
        chosen: Aligner = (
            MeshAligner(FaceMesh(LiteRTModel(files.landmarks.path, threads)), files.landmarks.sha256)
            if files.landmarks is not None
            else FourPointAligner()
        )
        # A fleet engineer reading a slow device's journal sees why int8 did not help (or did).
        if log.isEnabledFor(logging.INFO):  # reads /proc/cpuinfo: only when the line will be written
            names = "+".join(f.path.name for _, f in files.detectors) + " + " + files.embedder.path.name
            log.info("models %s (precision %s, chosen by %s) on %s", names, files.identity.precision, files.choice_note, read_cpu_profile().summary())
        if files.choice == "profile" and timings is not None:  # stale timings: the engineer should re-measure
            log.warning("model variants: %s", files.choice_note)
        for warning in library_warnings(scored_versions()):  # every command that scores faces says it once
            log.warning(warning)
        return cls(detectors, embedder, files.identity, quality or QualityPolicy(), tiles, chosen, files.choice)

    def detect(self, image_bgr: np.ndarray, every_range: bool = True) -> list[Detection]:
        """Every detector over the whole frame and, when tiling is on, over each tile; the same
        head seen more than once (both ranges, overlapping tiles, a box nested in another) is
        one detection. Best score first.

        ``every_range=False`` (the live pipeline between its periodic full passes): with both
        ranges loaded, the short range (close faces, the ones that fill the frame) runs only when
        the full range finds no face, which saves its invoke on most frames of a busy scene."""
        first = self.detectors if every_range else self.detectors[:1]
        found = self._detect_with(first, image_bgr)
        ran = len(first)
        if not found and ran < len(self.detectors):
            found = self._detect_with(self.detectors[ran:], image_bgr)
        return merge_detections(found) if (every_range and len(self.detectors) > 1) or self.tiles.enabled else drop_nested(found)

    def _detect_with(self, detectors: list[BlazeFaceDetector], image_bgr: np.ndarray) -> list[Detection]:
        found = [d for detector in detectors for d in detector.detect(image_bgr)]
        height, width = image_bgr.shape[:2]
        for region in self.tiles.regions(width, height):
            tile = image_bgr[region.y : region.y + region.height, region.x : region.x + region.width]
            for detector in detectors:
                found.extend(to_frame(d, region) for d in detector.detect(tile) if not cut_by_inner_edge(d.box, region, width, height))
        return found

    def faces(self, image_bgr: np.ndarray, embed_rejected: bool = False, keep_aligned: bool = False, with_mirror: bool = False) -> list[Face]:
        """All faces in a frame, each with its quality verdict; only usable faces (or all, when
        ``embed_rejected``) are embedded. Aligned crops are wiped unless ``keep_aligned``."""
        return [self.recognise(image_bgr, d, embed_rejected, keep_aligned, with_mirror) for d in self.detect(image_bgr)]

    def recognise(
        self, image_bgr: np.ndarray, detection: Detection, embed_rejected: bool = False, keep_aligned: bool = False, with_mirror: bool = False
    ) -> Face:
        """One detected face: aligned, assessed and (when usable) embedded. The live pipeline
        calls this per tracked face it chose to recognise this frame (agent/schedule.py)."""
        alignment = self.aligner.align(image_bgr, detection)
        verdict = assess(detection, alignment.crop, alignment.points, alignment.presence, self.quality)
        embedding = self.embedder.embed(alignment.crop, with_mirror) if (verdict.ok or embed_rejected) else None
        if not keep_aligned:
            alignment.crop.wipe()
        return Face(detection, verdict, embedding, alignment.crop if keep_aligned else None)
