"""How much each quality signal costs matching, measured on a labelled set and degraded copies of it.

Why: a quality gate is worth having only where a face is useless; everywhere else refusing a face
loses a match that would have been made (issue 13). This measures, per signal (face size, blur,
yaw from keypoint geometry, face-mesh presence, detector score) and per degradation (Gaussian blur,
downscaling into a 640x480 frame, JPEG, occlusion), how genuine scores fall and top impostor
scores rise, so the gates in ``edge_agent/vision/quality.py`` and its quality score rest on figures
(recorded in models/README.md, "Quality that predicts loss").

Protocol: photos are first scaled so the subject's face is at most 160 px wide. Each identity with two or more images enrols its first image (the watchlist build's
rule: the subject, mirror-averaged); every other image is a probe, searched against all
templates: its own identity's score is genuine (when enrolled), the best other identity's score is
its top impostor (the 1:N view). Probes go through the device path with every gate open, so
signals and scores are known for faces a gate would refuse. Degradations apply to probes only.

    python -m edge_agent.evaluation.quality_loss ../shared/datasets/faces-dev [--threshold T]
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import cv2
import numpy as np

from edge_agent.evaluation.dataset import scan_dataset
from edge_agent.vision.core import Face, RecognitionCore
from edge_agent.vision.enrolment import enrol_image
from edge_agent.vision.image_io import read_image
from edge_agent.vision.quality import QualityPolicy, quality_score
from edge_agent.vision.subject import choose_subject

OPEN = QualityPolicy(min_face_px=0.0, min_blur=0.0, max_yaw=np.inf, min_presence=0.0, min_score=0.0)
CANVAS = (640, 480)
MAX_FACE_PX = 160


@dataclass(frozen=True)
class Probe:
    condition: str
    identity: str
    found: bool
    face_px: float = 0.0
    blur: float = 0.0
    yaw: float = 0.0
    presence: float = 0.0
    det_score: float = 0.0
    genuine: float | None = None  # score against its own identity's template (None: not enrolled)
    top_impostor: float = -1.0


Degrade = Callable[[np.ndarray, tuple[float, float, float, float]], np.ndarray]


def blur(fraction: float) -> Degrade:
    """Gaussian blur with sigma a fraction of the face box width (defocus, motion)."""
    def apply(image, box):
        sigma = max(0.1, fraction * (box[2] - box[0]))
        return cv2.GaussianBlur(image, (0, 0), sigma)
    return apply


def downscale(face_px: int) -> Degrade:
    """The photo scaled so the face is ``face_px`` wide, in a 640x480 frame (a distant face)."""
    def apply(image, box):
        scale = face_px / max(1.0, box[2] - box[0])
        small = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
        canvas = np.full((CANVAS[1], CANVAS[0], 3), 110, np.uint8)
        cx, cy = (box[0] + box[2]) / 2 * scale, (box[1] + box[3]) / 2 * scale
        x0, y0 = int(round(cx - CANVAS[0] / 2)), int(round(cy - CANVAS[1] / 2))
        sx0, sy0 = max(0, x0), max(0, y0)
        sx1, sy1 = min(small.shape[1], x0 + CANVAS[0]), min(small.shape[0], y0 + CANVAS[1])
        canvas[sy0 - y0 : sy1 - y0, sx0 - x0 : sx1 - x0] = small[sy0:sy1, sx0:sx1]
        return canvas
    return apply


def jpeg(quality: int) -> Degrade:
    def apply(image, box):
        ok, data = cv2.imencode(".jpg", image, [cv2.IMWRITE_JPEG_QUALITY, quality])
        return cv2.imdecode(data, cv2.IMREAD_COLOR)
    return apply


def occlude(part: str) -> Degrade:
    """A flat grey patch: ``eyes`` (sunglasses band), ``lower`` (a mask from the nose down), ``half``."""
    def apply(image, box):
        out = image.copy()
        x1, y1, x2, y2 = (int(round(v)) for v in box)
        h = y2 - y1
        if part == "eyes":
            out[y1 + int(0.22 * h) : y1 + int(0.48 * h), x1:x2] = 60
        elif part == "lower":
            out[y1 + int(0.55 * h) : y2, x1:x2] = 200
        else:
            out[y1:y2, x1 : (x1 + x2) // 2] = 60
        return out
    return apply


CONDITIONS: list[tuple[str, Degrade | None]] = [("clean", None)]
CONDITIONS += [(f"blur sigma {f:g} x face", blur(f)) for f in (0.02, 0.04, 0.06, 0.09, 0.12)]
CONDITIONS += [(f"face {px} px in 640x480", downscale(px)) for px in (64, 48, 36, 28, 22, 16)]
CONDITIONS += [(f"JPEG quality {q}", jpeg(q)) for q in (50, 30, 20, 10, 5)]
CONDITIONS += [(f"occluded: {p}", occlude(p)) for p in ("eyes", "lower", "half")]


def _subject(core: RecognitionCore, image: np.ndarray) -> Face | None:
    return choose_subject(core.faces(image, embed_rejected=True)).face


def _normalised(core: RecognitionCore, image: np.ndarray) -> tuple[np.ndarray, Face | None]:
    """The photo scaled so its subject is at most ``MAX_FACE_PX`` wide (the embedder sees 112 px
    anyway; multi-megapixel web photos would make each blur condition take minutes)."""
    face = _subject(core, image)
    if face is None or face.detection.width <= MAX_FACE_PX:
        return image, face
    scale = MAX_FACE_PX / face.detection.width
    image = cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)
    return image, _subject(core, image)


def enrol_gallery(core: RecognitionCore, images) -> tuple[np.ndarray, np.ndarray, set]:
    """One enrolled template per identity with at least two images (its first usable one), so the
    rest are mated probes: (templates, identity of each, paths enrolled). Shared by the quality and
    fusion studies so both search the same gallery."""
    by_identity: dict[str, list] = {}
    for image in images:
        by_identity.setdefault(image.identity, []).append(image)
    templates, refs, used = [], [], set()
    for identity, members in by_identity.items():
        if len(members) < 2:
            continue
        for member in members:
            enrolment = enrol_image(core, read_image(member.path))
            if enrolment.template is not None:
                templates.append(enrolment.template)
                refs.append(identity)
                used.add(member.path)
                break
    return np.stack(templates), np.array(refs), used


def measure(core: RecognitionCore, root: Path, conditions=CONDITIONS, progress: Callable[[str], None] | None = None) -> list[Probe]:
    open_core = RecognitionCore(core.detectors, core.embedder, core.identity, OPEN, core.tiles, core.aligner)
    images = scan_dataset(root).images
    gallery, refs_arr, enrolled_paths = enrol_gallery(core, images)
    probes: list[Probe] = []
    for image in images:
        if image.path in enrolled_paths:
            continue
        clean, anchor = _normalised(open_core, read_image(image.path))
        if anchor is None:
            continue
        for name, degrade in conditions:
            frame = clean if degrade is None else degrade(clean, anchor.detection.box)
            probes.append(_probe(open_core, frame, name, image.identity, gallery, refs_arr))
        if progress is not None:
            progress(image.identity)
    return probes


def _probe(core: RecognitionCore, frame: np.ndarray, condition: str, identity: str, gallery: np.ndarray, refs: np.ndarray) -> Probe:
    face = _subject(core, frame)
    if face is None or face.embedding is None:
        return Probe(condition, identity, False)
    scores = gallery @ face.embedding
    own = refs == identity
    q = face.quality
    return Probe(
        condition, identity, True, q.face_px, q.blur, q.yaw, q.presence if q.presence is not None else 1.0, q.score,
        float(scores[own].max()) if own.any() else None, float(scores[~own].max()),
    )


def _summary(group: list[Probe], threshold: float) -> str:
    found = [p for p in group if p.found]
    if not found:
        return f"| {len(group)} | 0 % | - | - | - | - |"
    genuine = np.array([p.genuine for p in found if p.genuine is not None])
    impostor = np.array([p.top_impostor for p in found])
    gen = f"{genuine.mean():.3f} | {100 * float(np.mean(genuine < threshold)):.1f} %" if genuine.size else "- | -"
    return (
        f"| {len(group)} | {100 * len(found) / len(group):.0f} % | {gen} | "
        f"{impostor.mean():.3f} | {100 * float(np.mean(impostor >= threshold)):.1f} % |"
    )


HEADER = "| probes | face found | genuine mean | genuine below T | top impostor mean | top impostor at or above T |"


DEFAULT_POLICY = QualityPolicy()


def report(probes: list[Probe], threshold: float, policy: QualityPolicy = DEFAULT_POLICY) -> Iterator[str]:
    yield f"Threshold T = {threshold:.3f}. Genuine: score against the probe's own template; top impostor: best other subject."
    yield ""
    yield "By degradation:"
    yield ""
    yield "| condition " + HEADER
    yield "|---|---:|---:|---:|---:|---:|---:|"
    for name in dict.fromkeys(p.condition for p in probes):
        yield f"| {name} " + _summary([p for p in probes if p.condition == name], threshold)
    found = [p for p in probes if p.found]
    bins: list[tuple[str, str, list[float], Callable[[Probe], float]]] = [
        ("face width (px)", "face_px", [0, 16, 20, 24, 28, 36, 48, 64, 1e9], lambda p: p.face_px),
        ("blur (Laplacian variance)", "blur", [0, 2, 4, 8, 15, 30, 60, 120, 1e9], lambda p: p.blur),
        ("yaw (|nose offset| / eye distance)", "yaw", [0, 0.15, 0.3, 0.45, 0.6, 0.8, 1.0, 1e9], lambda p: abs(p.yaw)),
        ("face-mesh presence", "presence", [0, 0.5, 0.8, 0.95, 0.99, 1.01], lambda p: p.presence),
        ("detector score", "det_score", [0, 0.6, 0.7, 0.8, 0.9, 1.01], lambda p: p.det_score),
        ("quality score", "quality", [0, 0.001, 0.25, 0.5, 0.75, 0.9, 1.01], lambda p: _quality(p, policy)),
    ]
    for title, _, edges, value in bins:
        yield ""
        yield f"By {title} (every found probe, all conditions):"
        yield ""
        yield "| range " + HEADER
        yield "|---|---:|---:|---:|---:|---:|---:|"
        for lo, hi in zip(edges, edges[1:], strict=False):
            group = [p for p in found if lo <= value(p) < hi]
            if group:
                label = f"{lo:g} to {hi:g}" if hi < 1e8 else f"{lo:g} and above"
                yield f"| {label} " + _summary(group, threshold)
    yield ""
    yield "By yaw, clean photos only (the degradations above are not confounded with it here):"
    yield ""
    yield "| range " + HEADER
    yield "|---|---:|---:|---:|---:|---:|---:|"
    clean = [p for p in found if p.condition == "clean"]
    for lo, hi in zip([0, 0.1, 0.2, 0.3, 0.45, 0.6], [0.1, 0.2, 0.3, 0.45, 0.6, 1e9], strict=True):
        group = [p for p in clean if lo <= abs(p.yaw) < hi]
        if group:
            yield f"| {lo:g} to {hi:g} " + _summary(group, threshold) if hi < 1e8 else f"| {lo:g} and above " + _summary(group, threshold)
    qs = np.array([_quality(p, policy) for p in found if p.genuine is not None])
    gs = np.array([p.genuine for p in found if p.genuine is not None])
    if len(qs) > 2:
        rho = float(np.corrcoef(np.argsort(np.argsort(qs)), np.argsort(np.argsort(gs)))[0, 1])
        yield ""
        yield f"Rank correlation of the quality score with the genuine score: {rho:.3f} ({len(qs)} mated probes)."


def _quality(p: Probe, policy: QualityPolicy) -> float:
    return quality_score(p.face_px, p.blur, p.yaw, p.presence, p.det_score, policy)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--threshold", type=float, default=0.43, help="score T for the rate columns (default 0.43: the dev set's FAR 1e-3 point)")
    parser.add_argument("--limit", type=int, default=None, help="only the first N conditions (quick look)")
    parser.add_argument("--save", type=Path, help="also write every probe's signals and scores here (JSON)")
    parser.add_argument("--load", type=Path, help="report on probes saved by --save instead of measuring")
    args = parser.parse_args(argv)
    core = RecognitionCore.load()
    if args.load:
        probes = [Probe(**p) for p in json.loads(args.load.read_text())]
    else:
        conditions = CONDITIONS[: args.limit] if args.limit else CONDITIONS
        probes = measure(core, args.dataset, conditions, progress=lambda _: print(".", end="", file=sys.stderr, flush=True))
        print(file=sys.stderr)
    if args.save:
        args.save.write_text(json.dumps([asdict(p) for p in probes]))
    for line in report(probes, args.threshold, replace(core.quality)):
        print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
