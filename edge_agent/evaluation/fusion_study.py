"""Does matching a track's fused template help? Measured on synthesised tracks and the sample video.

Why: the live agent and the retrospective video search match each face on its own template and
on its track's fused one (``TrackTemplates``: quality-weighted mean of the best five, renormalised),
and alert on the better (issue 13). Fusion is worth it if mated tracks reach the threshold more
often than on their best single frame, without non-mated tracks doing so more often.

Tracks, each run through the real core and the real ``TrackTemplates``:
* *degraded*: every non-enrolled dev-set photo as an 8-frame track, each frame a random mix of blur,
  downscaling into a 640x480 frame, JPEG and (sometimes) occlusion, as a moving person gives;
* *photos*: identities with three or more photos, the ones not enrolled as the frames of one track;
* *video*: the demo's walk-past video (fixture portraits sliding across a 640x480 frame).
For each track, three rules: ``single`` (best frame's own score: the agent without fusion),
``fused`` (the fused template, as the track ends) and ``either`` (what the agent does: the better of
the two at every frame). Reported: mated tracks at or above T, non-mated tracks at or above T.

    python -m edge_agent.evaluation.fusion_study ../shared/datasets/faces-dev [--threshold T]
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from edge_agent.agent.tracking import TrackTemplates
from edge_agent.evaluation.dataset import scan_dataset
from edge_agent.evaluation.quality_loss import MAX_FACE_PX, blur, downscale, enrol_gallery, jpeg, occlude
from edge_agent.vision.core import RecognitionCore
from edge_agent.vision.enrolment import enrol_image
from edge_agent.vision.image_io import read_image
from edge_agent.vision.subject import choose_subject

FRAMES_PER_TRACK = 8


@dataclass(frozen=True)
class TrackResult:
    kind: str
    mated: bool
    single: float  # best frame's own score against the track's subject (mated) or best other subject
    fused: float
    either: float
    frames: int


def track_scores(core: RecognitionCore, frames: Iterable[np.ndarray], gallery: np.ndarray, own: np.ndarray) -> tuple[float, float, float, int]:
    """(single, fused, either, frames with a face) for one track; ``own``: mask of the subject's
    templates (all False for a non-mated track: then scores are against the best other subject)."""
    def score(template: np.ndarray) -> float:
        s = gallery @ template
        return float(s[own].max()) if own.any() else float(s.max())
    held = TrackTemplates()
    single = fused = either = -1.0
    seen = 0
    for frame in frames:
        face = choose_subject(core.faces(frame)).face
        if face is None or face.embedding is None:
            continue
        seen += 1
        own_score = score(face.embedding)
        together = held.add(1, face.embedding, face.quality.quality)
        fused_score = score(together) if together is not None else own_score
        single, fused = max(single, own_score), fused_score
        either = max(either, own_score, fused_score)
    held.clear()
    return single, fused, either, seen


def _degrade_again(frame: np.ndarray, face_px: int, rng: np.random.Generator) -> np.ndarray:
    """Blur, JPEG and occlusion around the frame's centre, where ``downscale`` put the face."""
    h, w = frame.shape[:2]
    box = (w / 2 - face_px / 2, h / 2 - face_px / 2, w / 2 + face_px / 2, h / 2 + face_px / 2)
    if rng.random() < 0.6:
        frame = blur(float(rng.uniform(0.0, 0.05)))(frame, box)
    if rng.random() < 0.1:
        frame = occlude(str(rng.choice(["eyes", "lower", "half"])))(frame, box)
    return jpeg(int(rng.integers(15, 90)))(frame, box)


def measure(core: RecognitionCore, root: Path, seed: int = 0) -> list[TrackResult]:
    images = scan_dataset(root).images
    gallery, refs, enrolled = enrol_gallery(core, images)
    rng = np.random.default_rng(seed)
    results: list[TrackResult] = []
    for image in images:
        if image.path in enrolled:
            continue
        photo = read_image(image.path)
        anchor = choose_subject(core.faces(photo, embed_rejected=True)).face
        if anchor is None:
            continue
        own = refs == image.identity
        frames = list(_centred_degradations(photo, anchor.detection.box, rng))
        results += _both_ways(core, "degraded", frames, gallery, own)
    by_identity: dict[str, list] = {}
    for image in images:
        if image.path not in enrolled:
            by_identity.setdefault(image.identity, []).append(image)
    for identity, members in by_identity.items():
        own = refs == identity
        if len(members) < 2 or not own.any():
            continue
        results += _both_ways(core, "photos", [_bounded(core, read_image(m.path)) for m in members], gallery, own)
    return results


def _both_ways(core: RecognitionCore, kind: str, frames: list[np.ndarray], gallery: np.ndarray, own: np.ndarray) -> list[TrackResult]:
    """The track against its own subject (when enrolled) and against everyone else (non-mated)."""
    out = []
    if own.any():
        out.append(TrackResult(kind, True, *track_scores(core, frames, gallery, own)))
    others = gallery[~own]
    out.append(TrackResult(kind, False, *track_scores(core, frames, others, np.zeros(len(others), bool))))
    return out


def _bounded(core: RecognitionCore, image: np.ndarray) -> np.ndarray:
    import cv2

    face = choose_subject(core.faces(image, embed_rejected=True)).face
    if face is None or face.detection.width <= MAX_FACE_PX:
        return image
    scale = MAX_FACE_PX / face.detection.width
    return cv2.resize(image, None, fx=scale, fy=scale, interpolation=cv2.INTER_AREA)


def _centred_degradations(photo: np.ndarray, box, rng: np.random.Generator) -> Iterator[np.ndarray]:
    """A person moving about 2-5 m from a 640x480 camera: face 40-110 px, often soft, JPEG'd."""
    for _ in range(FRAMES_PER_TRACK):
        px = int(rng.integers(40, 110))
        yield _degrade_again(downscale(px)(photo, box), px, rng)


def video_tracks(core: RecognitionCore) -> list[TrackResult]:
    """The demo's walk-past video: obama_2 and biden_2 walk past a watchlist of obama_1 and biden_1
    (mated), the astronaut walks past it too (non-mated)."""
    from edge_agent.demo.scenes import fixture_photo, walk_past_frames

    names = {"obama": "obama_1.jpg", "biden": "biden_1.jpg"}
    templates = [enrol_image(core, fixture_photo(f)).template for f in names.values()]
    gallery = np.stack([t for t in templates if t is not None])
    refs = np.array(list(names))
    results = []
    for walker, person in (("obama_2.jpg", "obama"), ("biden_2.jpg", "biden"), ("astronaut_collins.jpg", None)):
        frames = [f for f in walk_past_frames([walker], fps=15.0, seconds_each=2.0)][:30]
        own = refs == person if person else np.zeros(len(refs), bool)
        results.append(TrackResult(f"video {walker}", person is not None, *track_scores(core, frames, gallery, own)))
    return results


def report(results: list[TrackResult], threshold: float, video: bool = True) -> Iterator[str]:
    yield f"Threshold T = {threshold:.3f}. Each cell: tracks at or above T (and the mean score)."
    yield ""
    yield "| tracks | mated? | count | single (best frame) | fused | either (what the agent does) |"
    yield "|---|---|---:|---:|---:|---:|"
    for kind in dict.fromkeys(r.kind for r in results if not r.kind.startswith("video")):
        for mated in (True, False):
            group = [r for r in results if r.kind == kind and r.mated == mated and r.frames]
            if not group:
                continue
            cells = []
            for rule in ("single", "fused", "either"):
                v = np.array([getattr(r, rule) for r in group])
                cells.append(f"{100 * float(np.mean(v >= threshold)):.1f} % ({v.mean():.3f})")
            yield f"| {kind} | {'mated' if mated else 'non-mated'} | {len(group)} | " + " | ".join(cells) + " |"
    if not video:
        return
    yield ""
    yield "| sample video track | mated? | frames with a face | single | fused | either |"
    yield "|---|---|---:|---:|---:|---:|"
    for r in results:
        if r.kind.startswith("video"):
            yield f"| {r.kind[6:]} | {'mated' if r.mated else 'non-mated'} | {r.frames} | {r.single:.3f} | {r.fused:.3f} | {r.either:.3f} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dataset", type=Path)
    parser.add_argument("--threshold", type=float, action="append",
                        help="score T for the rates (repeatable; default 0.43, the dev set's 1:1 FAR 1e-3 point, and 0.55)")
    args = parser.parse_args(argv)
    core = RecognitionCore.load()
    results = measure(core, args.dataset) + video_tracks(core)
    for n, threshold in enumerate(args.threshold or [0.43, 0.55]):
        if n:
            print()
        for line in report(results, threshold, video=n == 0):
            print(line)
    return 0


if __name__ == "__main__":
    sys.exit(main())
